"""
The documentation stays true to its sources: the architecture diagram is
what Graphviz draws from its source, and the protocol, schema and IAM
documents name everything the code has.
"""

import re
import shutil
import subprocess

from django.conf import settings

from chat import protocol
from chat.iam import APPLICATION, GRANTS, TABLES, Names

from .support.processes import ROOT

DOCS = ROOT / "docs"


def test_the_architecture_diagram_is_drawn_from_its_source():
    dot = shutil.which("dot")
    assert dot, "Graphviz is missing: apt-get install -y graphviz (or bin/install-system-packages test)"
    drawn = subprocess.run(
        [dot, "-Tsvg", str(DOCS / "architecture.dot")], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert drawn == (DOCS / "architecture.svg").read_text(), "redraw it with: make docs"


def test_the_readme_shows_the_diagram_and_links_every_document():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/architecture.svg)" in readme
    for document in sorted(DOCS.glob("*.md")):
        assert f"(docs/{document.name})" in readme, document.name


def protocol_constants(section: str) -> dict[str, str | int]:
    """The constants of one ``# --- <section>`` block of chat/protocol.py."""
    source = (ROOT / "chat" / "protocol.py").read_text()
    block = source.split(f"# --- {section}", 1)[1].split("# ---", 1)[0]
    return {name: getattr(protocol, name) for name in re.findall(r"^([A-Z_]+) = ", block, flags=re.MULTILINE)}


def test_the_routes_document_names_every_action_frame_error_and_close_code():
    text = (DOCS / "websocket-routes.md").read_text()
    for action in protocol.ACTIONS:
        assert f'"action": "{action}"' in text, action
    frames = [protocol.WELCOME, protocol.PRESENCE, protocol.MESSAGE, protocol.HISTORY, protocol.ERROR, protocol.SYSTEM]
    for frame in frames:
        assert f"| `{frame}` |" in text, frame
    for name, code in protocol_constants("Error codes").items():
        assert f"`{code}`" in text, name
    closes = {name: code for name, code in vars(protocol).items() if name.startswith("CLOSE_")}
    for name, code in closes.items():
        assert str(code) in text, name


def test_the_schema_document_names_every_table_key_index_and_ttl(dynamodb_local):
    text = (DOCS / "dynamodb-schema.md").read_text()
    client = dynamodb_local.client()
    for setting in TABLES.values():
        table = getattr(settings, setting)
        assert f"## `{table}`" in text and f"`{setting}`" in text, setting
        described = client.describe_table(TableName=table)["Table"]
        for attribute in described["AttributeDefinitions"]:
            assert f"`{attribute['AttributeName']}`" in text, (table, attribute)
        for index in described.get("GlobalSecondaryIndexes", []):
            assert f"`{index['IndexName']}`" in text, (table, index["IndexName"])
        ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        assert f"`{ttl['AttributeName']}`" in text, table


def test_the_iam_document_explains_every_grant():
    rows = [line for line in (DOCS / "iam-policies.md").read_text().splitlines() if line.startswith("| `")]
    names = Names.from_settings()
    for grant in GRANTS:
        action = f"`{grant.action}`"
        if grant.resource.startswith("table:") and grant.policy == APPLICATION:
            table = f"`table/{names.tables[grant.resource.split(':')[1]]}`"
            assert any(action in row and table in row for row in rows), grant
        else:
            assert any(row.startswith(f"| {action}") for row in rows), grant
