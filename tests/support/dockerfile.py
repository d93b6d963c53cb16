"""
The Dockerfile read as the image builder reads it, as far as the tests need:
instructions with their continuation lines joined and comments dropped, the
``ENV`` in effect at each of them, exec-form commands, and the inline
environment of a shell-form ``RUN``. Anything it does not understand (a
shell operator in a ``RUN``, a shell-form ``CMD``) is an error, not a guess.
"""

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from .processes import ROOT

PATH = ROOT / "Dockerfile"
# A shell-form command that is more than one simple command.
SHELL_OPERATORS = {"&&", "||", ";", "|", "&", ">", ">>", "<"}
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: RUN, ENV, CMD...
    arguments: str  # continuation lines joined with a space
    line: int  # where it starts in the file


def instructions(path: Path = PATH) -> list[Instruction]:
    """Every instruction in order; comment lines vanish even inside a continuation, as for the builder."""
    found: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip().startswith("#") or (not parts and not line.strip()):
            continue
        if not parts:
            start = number
        continued = line.rstrip().endswith("\\")
        parts.append(line.rstrip().removesuffix("\\").strip() if continued else line.strip())
        if not continued:
            keyword, _, arguments = " ".join(part for part in parts if part).partition(" ")
            found.append(Instruction(keyword.upper(), arguments.strip(), start))
            parts = []
    if parts:
        raise ValueError(f"{path}:{start}: the last instruction ends in a line continuation")
    return found


def exec_form(arguments: str) -> list[str]:
    """A JSON-array command (``CMD ["daphne", ...]``) as its argv."""
    argv = json.loads(arguments)
    if not (isinstance(argv, list) and argv and all(isinstance(arg, str) for arg in argv)):
        raise ValueError(f"not an exec-form command: {arguments}")
    return argv


def environment(before: list[Instruction]) -> dict[str, str]:
    """The variables the ``ENV`` instructions among ``before`` set, later ones winning."""
    variables: dict[str, str] = {}
    for instruction in before:
        if instruction.keyword != "ENV":
            continue
        words = shlex.split(instruction.arguments)
        if not ASSIGNMENT.match(words[0]):  # the old ``ENV NAME value`` form
            name, _, value = instruction.arguments.partition(" ")
            variables[name] = " ".join(shlex.split(value))
            continue
        for word in words:
            match = ASSIGNMENT.match(word)
            if not match:
                raise ValueError(f"line {instruction.line}: not NAME=VALUE: {word}")
            variables[match[1]] = match[2]
    return variables


def shell_command(arguments: str) -> tuple[dict[str, str], list[str]]:
    """A shell-form ``RUN`` of one simple command as (its leading ``NAME=VALUE`` words, its argv)."""
    lexer = shlex.shlex(arguments, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    if SHELL_OPERATORS & set(words) or any("$" in word or "`" in word for word in words):
        raise ValueError(f"not one simple command without expansions: {arguments}")
    inline: dict[str, str] = {}
    while words and (match := ASSIGNMENT.match(words[0])):
        inline[match[1]] = match[2]
        words.pop(0)
    if not words:
        raise ValueError(f"no command after the assignments: {arguments}")
    return inline, words


def healthcheck(arguments: str) -> tuple[dict[str, str], list[str]]:
    """A ``HEALTHCHECK [--option=value...] CMD [...]`` as (its options, its exec-form argv)."""
    options: dict[str, str] = {}
    rest = arguments
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        name, _, value = option.removeprefix("--").partition("=")
        options[name] = value
        rest = rest.lstrip()
    keyword, _, command = rest.partition(" ")
    if keyword.upper() != "CMD":
        raise ValueError(f"not a HEALTHCHECK CMD: {arguments}")
    return options, exec_form(command.strip())


def seconds(duration: str) -> float:
    """A builder duration (``15s``, ``1m30s``, ``500ms``) in seconds."""
    parts = DURATION.findall(duration)
    if not parts or "".join(number + unit for number, unit in parts) != duration:
        raise ValueError(f"not a duration: {duration}")
    return sum(float(number) * SECONDS[unit] for number, unit in parts)
