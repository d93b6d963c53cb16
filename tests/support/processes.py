"""Real server processes for tests and the benchmark: start, wait until ready, stop."""

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception as error:  # the thing we wait for may raise until it is up
            last_error = error
        else:
            if result:
                return result
        time.sleep(interval)
    raise TimeoutError(
        f"{what} not ready after {timeout:.0f} s" + (f" (last error: {last_error})" if last_error else "")
    )


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """The status and body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class ManagedProcess:
    """A child process whose output goes to a file, shown when it fails."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self) -> "ManagedProcess":
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited early ({self.argv[0]}); its output:\n{self.output()[-4000:]}")

    def wait_ready(self, predicate: Callable[[], object], *, timeout: float) -> None:
        def ready() -> object:
            self.check_alive()
            return predicate()

        try:
            wait_until(ready, timeout=timeout, what=self.name)
        except TimeoutError as error:
            raise TimeoutError(f"{error}; its output:\n{self.output()[-4000:]}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        """Signal the process group, then kill it if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
