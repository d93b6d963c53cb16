"""
Figures a test measured, shown in their own section at the end of the run
(tests never judge them: speed goals live in ``bench/``). A test asks for
the ``figures`` fixture and calls it with a line.
"""

import pytest

_LINES = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_LINES] = []


@pytest.fixture
def figures(request):
    """``figures("what was measured")``: a line for the run's *Figures measured* section, under the test's name."""
    lines = request.config.stash[_LINES]

    def add(line: str) -> None:
        lines.append(f"{request.node.name}: {line}")

    return add


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if lines := config.stash[_LINES]:
        terminalreporter.section("Figures measured", sep="-")
        for line in lines:
            terminalreporter.write_line(line)
