"""
A pytest plugin: every process of the run records its AWS operations (see
``aws_recorder``) into one directory, and tests marked ``runs_last`` run
after all others, so they can audit what the whole run did.
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import aws_recorder
from .processes import ROOT

RUNS_LAST = "runs_last"
_STATE = pytest.StashKey[dict]()


@dataclass
class AWSOperations:
    directory: Path
    # True when the run selected every test: no node ids, no -k/-m/--lf deselection.
    full_run: bool
    # How many tests failed before the audit ran (their operations may be missing).
    failed_before: int

    def records(self) -> list[dict]:
        return aws_recorder.read_records(self.directory)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{RUNS_LAST}: run after every other test (it checks what they did)")
    directory = os.environ.get(aws_recorder.ENV) or tempfile.mkdtemp(prefix="aws-operations-")
    os.environ[aws_recorder.ENV] = directory
    aws_recorder.install(directory, "pytest")
    config.stash[_STATE] = {"directory": Path(directory), "deselected": 0}


def pytest_deselected(items) -> None:
    if items:
        items[0].config.stash[_STATE]["deselected"] += len(items)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items) -> None:
    last = [item for item in items if item.get_closest_marker(RUNS_LAST)]
    items[:] = [item for item in items if not item.get_closest_marker(RUNS_LAST)] + last


def _whole_suite_selected(config: pytest.Config) -> bool:
    tests = (ROOT / "tests").resolve()
    for arg in config.args:
        if "::" in arg:
            return False
        path = (Path(config.invocation_params.dir) / arg).resolve()
        if not (tests == path or tests.is_relative_to(path)):
            return False
    return config.stash[_STATE]["deselected"] == 0


@pytest.fixture
def aws_operations(request) -> AWSOperations:
    """The AWS operations every process of this run has performed so far."""
    state = request.config.stash[_STATE]
    return AWSOperations(
        directory=state["directory"],
        full_run=_whole_suite_selected(request.config),
        failed_before=request.session.testsfailed,
    )
