"""The chat server as users run it: a daphne process on a free port."""

import os
import sys
import urllib.request

from .processes import ManagedProcess, free_port, port_open


class DaphneServer:
    def __init__(self, env: dict[str, str], port: int | None = None, name: str = "daphne") -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.name = name
        self.process = self._process()

    def _process(self) -> ManagedProcess:
        argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "chatsite.asgi:application"]
        return ManagedProcess(self.name, argv, env=self.env)

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
