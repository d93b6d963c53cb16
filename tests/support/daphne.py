"""The chat server as users run it: a daphne process on a free port."""

import os
import shlex
import urllib.request

from .processes import ROOT, ManagedProcess, free_port, port_open
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


class DaphneServer:
    def __init__(self, env: dict[str, str], port: int | None = None, name: str = "daphne") -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.name = name
        self.process = self._process()

    def _process(self) -> ManagedProcess:
        return ManagedProcess(self.name, serve_argv(self.port), env=self.env)

    def start(self, timeout: float = 30) -> "DaphneServer":
        self.process.start()
        self.process.wait_ready(lambda: port_open(self.port), timeout=timeout)
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
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
