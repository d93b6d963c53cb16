"""
The IAM policies in deploy/iam/ are least privilege, proved by the whole run:
every AWS operation any process performed is allowed, and (on a full run)
every granted action on every granted resource was performed somewhere.
"""

import dataclasses
import fnmatch
import json
import os
import re
import subprocess
import sys

import pytest

from chat.iam import APPLICATION, GRANTS, POLICIES, STATIC_DEPLOY, TABLE_SETUP, TABLES, Names, policy_document

from .support import aws_recorder
from .support.processes import ROOT
from .support.recorded import python_argv

POLICY_DIR = ROOT / "deploy" / "iam"
ACCOUNT = "123456789012"  # any account: the documents name tables in every account ("*")

# The one policy each kind of process runs with in a deployment. The test
# process itself plays every part (it calls the store directly), so it may use any.
PROCESS_POLICIES = {
    "daphne": APPLICATION,
    "manage.py collectstatic": STATIC_DEPLOY,
    "manage.py ensure_tables": TABLE_SETUP,
}

# The IAM action AWS checks for each S3 operation the code performs.
S3_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "PutObjectTagging": "s3:PutObjectTagging",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
}


def committed_policies() -> dict[str, dict]:
    return {name: json.loads((POLICY_DIR / f"{name}.json").read_text()) for name in POLICIES}


def required(record: dict) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs AWS would check for one recorded operation."""
    service, operation = record["service"], record["operation"]
    if service == "dynamodb":
        arn = f"arn:aws:dynamodb:{record['region']}:{ACCOUNT}:table/{record['TableName']}"
        if record.get("IndexName"):
            arn += f"/index/{record['IndexName']}"
        return [(f"dynamodb:{operation}", arn)]
    if service == "s3":
        bucket = f"arn:aws:s3:::{record['Bucket']}"
        if record.get("notFound") and record["Bucket"] != Names.from_settings().uploads_bucket:
            # A missing key answers 404 only with ListBucket on the bucket; 403 otherwise. The
            # uploads code takes a 403 for a missing attachment, so there it needs no ListBucket.
            return [("s3:ListBucket", bucket)]
        if operation not in S3_ACTIONS:
            raise AssertionError(f"no rule for S3 {operation}: add the IAM action it needs to S3_ACTIONS")
        return [(S3_ACTIONS[operation], f"{bucket}/{record['Key']}" if "Key" in record else bucket)]
    raise AssertionError(f"no rule for {service} {operation}: teach required() how AWS authorizes it")


def _listed(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def matching_statements(document: dict, action: str, arn: str) -> list[dict]:
    return [
        statement
        for statement in document["Statement"]
        if statement["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in _listed(statement["Action"]))
        and any(fnmatch.fnmatchcase(arn, pattern) for pattern in _listed(statement["Resource"]))
    ]


def documents_for(record: dict, committed: dict[str, dict]) -> dict[str, dict]:
    """
    The documents that govern one record: the committed ones, or, for a table
    a test named itself, what ``iam_policy`` prints with that table configured.
    """
    table = record.get("TableName")
    if table is None or table in Names.from_settings().tables.values():
        return committed
    defaults = Names.from_settings()
    names = dataclasses.replace(defaults, account="*", tables=dict.fromkeys(defaults.tables, table))
    return {name: policy_document(name, names) for name in POLICIES}


@pytest.mark.parametrize("policy", list(POLICIES))
def test_policy_files_are_what_iam_policy_prints_for_the_default_names(policy):
    # A clean environment: every name at its default, as `make iam` runs it.
    env = {"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "chatsite.settings", "DJANGO_DEBUG": "1"}
    done = subprocess.run(
        [sys.executable, "manage.py", "iam_policy", policy],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == committed_policies()[policy], f"regenerate with: make iam ({policy})"


def test_policies_grant_no_wildcard_actions_and_name_every_resource():
    for name, document in committed_policies().items():
        assert document["Version"] == "2012-10-17"
        for statement in document["Statement"]:
            assert set(statement) == {"Sid", "Effect", "Action", "Resource"}, (name, statement)
            assert statement["Effect"] == "Allow"
            for action in _listed(statement["Action"]):
                assert "*" not in action and "?" not in action, (name, action)
            for resource in _listed(statement["Resource"]):
                assert resource.startswith(("arn:aws:dynamodb:", "arn:aws:s3:::")), (name, resource)
                # Wildcards only where nothing can be named: any account, any index, any file under the prefix.
                assert named(resource) and not set(named(resource)) & {"*", "?"}, (name, resource)


def named(resource: str) -> str:
    """The table or bucket an ARN names."""
    if resource.startswith("arn:aws:dynamodb:"):
        return resource.split(":", 5)[5].split("/")[1]
    return resource.removeprefix("arn:aws:s3:::").split("/")[0]


def test_the_policies_name_every_table_the_settings_name():
    # A table missing from TABLES would be audited as one a test named itself, and pass unchecked.
    source = (ROOT / "chatsite" / "settings.py").read_text()
    settings_tables = set(re.findall(r"^(CHAT_[A-Z_]+_TABLE) = env\(", source, flags=re.MULTILINE))
    assert settings_tables == set(TABLES.values())


def test_every_grant_has_a_reason():
    for grant in GRANTS:
        assert grant.policy in POLICIES and grant.why.strip(), grant


PRESIGNING = """
import boto3

s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
s3.generate_presigned_post(Bucket="chat-uploads", Key="uploads/lobby/01J/photo.png")
s3.generate_presigned_url("get_object", Params={"Bucket": "chat-uploads", "Key": "uploads/lobby/01J/photo.png"})
"""


def test_presigned_requests_are_recorded_as_the_operations_they_allow(tmp_path):
    """Signing calls nothing, but S3 authorizes whoever uses the POST or URL by the signer's permissions."""
    script = tmp_path / "presign.py"
    script.write_text(PRESIGNING)
    directory = tmp_path / "records"  # not the run's: these signatures are no use of a grant
    directory.mkdir()
    env = {**os.environ, aws_recorder.ENV: str(directory)}
    subprocess.run(python_argv(str(script)), cwd=ROOT, env=env, capture_output=True, timeout=60, check=True)
    records = aws_recorder.read_records(directory)
    assert {(r["service"], r["operation"], r["Bucket"], r["Key"], r.get("presigned")) for r in records} == {
        ("s3", "PutObject", "chat-uploads", "uploads/lobby/01J/photo.png", True),
        ("s3", "GetObject", "chat-uploads", "uploads/lobby/01J/photo.png", True),
    }


@pytest.mark.runs_last
def test_every_aws_operation_of_the_run_is_allowed_and_every_grant_was_used(aws_operations):
    """
    Runs after every other test. Every operation must be allowed on any run.
    Unused grants are judged only when the whole suite ran and passed (or
    with --iam-audit=full); the end of the run says whether they were.
    """
    committed = committed_policies()
    records = aws_operations.records()
    assert records, "no AWS operation was recorded: is the recorder installed?"
    used: set[tuple[str, str, str]] = set()  # (policy, statement Sid, action)
    refused = []
    for record in records:
        documents = documents_for(record, committed)
        policy = PROCESS_POLICIES.get(record["process"])
        candidates = {policy: documents[policy]} if policy else documents
        for action, arn in required(record):
            allowed_by = {name: matching_statements(document, action, arn) for name, document in candidates.items()}
            if not any(allowed_by.values()):
                refused.append(f"{record['process']}: {action} on {arn} ({record['operation']})")
            if documents is committed:
                used |= {(name, s["Sid"], action) for name, found in allowed_by.items() for s in found}
    assert not refused, "operations no policy in deploy/iam/ allows:\n" + "\n".join(sorted(set(refused)))
    aws_operations.report(f"{len(records)} distinct AWS operations recorded, every one allowed by deploy/iam/.")

    not_judged = aws_operations.unused_grants_not_judged()
    if not_judged:
        aws_operations.report(f"Unused grants NOT judged: {not_judged}.")
        return
    granted = {
        (name, statement["Sid"], action)
        for name, document in committed.items()
        for statement in document["Statement"]
        for action in _listed(statement["Action"])
    }
    unused = sorted(granted - used)
    assert not unused, (
        "granted but never performed by the run (remove them, or test the code that needs them):\n"
        + "\n".join(f"{policy} {sid}: {action}" for policy, sid, action in unused)
    )
    aws_operations.report(f"Every one of the {len(granted)} granted actions was performed by the run.")
