"""
Run a Python program with its AWS operations recorded (see ``aws_recorder``):

    python -m tests.support.recorded -m daphne -b 127.0.0.1 -p 8000 chatsite.asgi:application
    python -m tests.support.recorded manage.py collectstatic --noinput

Without ``TEST_AWS_RECORD_DIR`` in the environment it just runs the program.
"""

import runpy
import sys
from pathlib import Path

from . import aws_recorder


def label(args: list[str]) -> str:
    """``daphne`` for ``-m daphne ...``; ``manage.py collectstatic`` for a management command."""
    if args[0] == "-m":
        return args[1]
    return " ".join(args[:2]) if Path(args[0]).name == "manage.py" and len(args) > 1 else Path(args[0]).name


def python_argv(*args: str) -> list[str]:
    """The command line running ``python ARGS...`` recorded, e.g. ``python_argv("manage.py", "ensure_tables")``."""
    return [sys.executable, "-m", "tests.support.recorded", *args]


def main(args: list[str]) -> None:
    if not args or (args[0] == "-m" and len(args) < 2):
        raise SystemExit("usage: python -m tests.support.recorded (-m MODULE | SCRIPT) [ARGS...]")
    aws_recorder.install_from_environment(label(args))
    if args[0] == "-m":
        sys.argv = [args[1], *args[2:]]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(args)
        sys.path[0] = str(Path(args[0]).resolve().parent)
        runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
