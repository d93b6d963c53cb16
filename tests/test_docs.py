"""The documentation stays true to its sources: the architecture diagram is what Graphviz draws from its source."""

import shutil
import subprocess

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
