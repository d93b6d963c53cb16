"""
A pytest plugin: every process of the run records its AWS operations (see
``aws_recorder``) into one directory, and tests marked ``runs_last`` run
after all others, so they can audit what the whole run did.

Whether every grant was used can only be judged on a run of the whole suite.
A run that selects or deselects tests skips that judgement and says so at
the end of the run; ``--iam-audit=full`` judges it anyway, for a run that
leaves out only tests known to need no grant of their own, e.g.
``pytest --deselect tests/test_broadcast_load.py --iam-audit=full``.
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import aws_recorder
from .processes import ROOT

RUNS_LAST = "runs_last"
OPTION = "--iam-audit"
_STATE = pytest.StashKey[dict]()


@dataclass
class AWSOperations:
    directory: Path
    # Why the run is not the whole suite (node ids, a folder, -k/-m/--deselect), or None.
    partial: str | None
    # --iam-audit=full: judge unused grants even on a partial run.
    forced_full: bool
    # How many tests failed before the audit ran (their operations may be missing).
    failed_before: int
    notes: list[str]

    def records(self) -> list[dict]:
        return aws_recorder.read_records(self.directory)

    def unused_grants_not_judged(self) -> str | None:
        """Why this run cannot tell whether every grant was used, or None when it can."""
        if self.failed_before:
            return f"{self.failed_before} test(s) failed before the audit"
        if self.partial and not self.forced_full:
            return f"{self.partial}; {OPTION}=full judges them anyway"
        return None

    def report(self, line: str) -> None:
        """A line shown at the end of the run, under "AWS operations audit"."""
        self.notes.append(line)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        OPTION,
        choices=("auto", "full"),
        default="auto",
        help=(
            "auto: judge unused IAM grants only when the whole suite runs; "
            "full: judge them even though tests were selected or deselected"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{RUNS_LAST}: run after every other test (it checks what they did)")
    directory = os.environ.get(aws_recorder.ENV) or tempfile.mkdtemp(prefix="aws-operations-")
    os.environ[aws_recorder.ENV] = directory
    aws_recorder.install(directory, "pytest")
    config.stash[_STATE] = {"directory": Path(directory), "deselected": 0, "notes": []}


def pytest_deselected(items) -> None:
    if items:
        items[0].config.stash[_STATE]["deselected"] += len(items)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items) -> None:
    last = [item for item in items if item.get_closest_marker(RUNS_LAST)]
    items[:] = [item for item in items if not item.get_closest_marker(RUNS_LAST)] + last


def _partial(config: pytest.Config) -> str | None:
    """Why this run is not the whole suite, or None."""
    tests = (ROOT / "tests").resolve()
    for arg in config.args:
        if "::" in arg:
            return f"tests chosen by node id ({arg})"
        path = (Path(config.invocation_params.dir) / arg).resolve()
        if not (tests == path or tests.is_relative_to(path)):
            return f"only the tests under {arg} ran"
    deselected = config.stash[_STATE]["deselected"]
    return f"{deselected} test(s) deselected" if deselected else None


@pytest.fixture
def aws_operations(request) -> AWSOperations:
    """The AWS operations every process of this run has performed so far."""
    state = request.config.stash[_STATE]
    return AWSOperations(
        directory=state["directory"],
        partial=_partial(request.config),
        forced_full=request.config.getoption(OPTION) == "full",
        failed_before=request.session.testsfailed,
        notes=state["notes"],
    )


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    notes = config.stash[_STATE]["notes"]
    if notes:
        terminalreporter.section("AWS operations audit", sep="-")
        for line in notes:
            terminalreporter.write_line(line)
