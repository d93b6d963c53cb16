"""The chat server as users run it: a daphne process on a free port."""

import glob
import os
import shlex
from collections.abc import Callable

from .processes import ROOT, ManagedProcess, free_port, http_get, port_open
from .recorded import python_argv


def procfile_command() -> list[str]:
    """The ``web`` command of the Procfile: how Elastic Beanstalk, the container and these tests serve the chat."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        kind, _, command = line.partition(":")
        if kind.strip() == "web":
            return shlex.split(command)
    raise RuntimeError("the Procfile has no web command")


def serve_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    """The Procfile's daphne command, bound to ``host:port``, run by this Python with AWS calls recorded."""
    argv = procfile_command()
    assert argv[0] == "daphne", argv
    for flag, value in (("-b", host), ("-p", str(port))):
        argv[argv.index(flag) + 1] = value
    return python_argv("-m", *argv)


# Where Debian's libfaketime package puts the library (a dependency of the faketime package).
LIBFAKETIME = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1")


def faketime_env(offset: str) -> dict[str, str]:
    """
    The environment that runs a process under libfaketime with its clock
    ``offset`` from the real one (``"+3s"``), as on a host whose clock is off.
    Its monotonic clock moves by the same constant, which changes nothing
    (it has no meaning outside the process); keeping it true instead
    (``FAKETIME_DONT_FAKE_MONOTONIC``) makes libfaketime slow every wait
    between threads several times over, and the server with them.
    """
    found = sorted(path for pattern in LIBFAKETIME for path in glob.glob(pattern))
    if not found:
        raise RuntimeError(
            "libfaketime is missing, so no server can run with its clock off: apt-get install -y faketime"
        )
    return {"LD_PRELOAD": found[0], "FAKETIME": offset}


class DaphneServer:
    """
    One daphne process; ``clock_offset`` (``"+3s"``) runs it under libfaketime
    with its wall clock that far from the real one. It binds ``host``;
    ``wrap`` turns its command line into one that runs it elsewhere (a test
    host's network namespace: ``tests.support.network.Host.command``).
    """

    def __init__(
        self,
        env: dict[str, str],
        port: int | None = None,
        name: str = "daphne",
        clock_offset: str | None = None,
        *,
        host: str = "127.0.0.1",
        wrap: Callable[[list[str]], list[str]] = list,
    ) -> None:
        self.port = port or free_port()
        self.host = host
        self.url = f"http://{host}:{self.port}"
        self.ws_url = f"ws://{host}:{self.port}"
        self.env = {**os.environ, **env, **(faketime_env(clock_offset) if clock_offset else {})}
        self.name = name
        self.wrap = wrap
        self.process = self._process()

    def _process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.wrap(serve_argv(self.port, self.host)), env=self.env)

    def start(self, timeout: float = 30) -> "DaphneServer":
        self.process.start()
        self.process.wait_ready(lambda: port_open(self.port, self.host), timeout=timeout)
        return self

    def restart(self, timeout: float = 30) -> "DaphneServer":
        self.stop()
        self.process = self._process()
        return self.start(timeout)

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def output(self) -> str:
        return self.process.output()

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        return http_get(self.url + path, timeout)
