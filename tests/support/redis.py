"""The Redis server at 127.0.0.1:6379, started if it is not running."""

import shutil
import subprocess
from collections.abc import Callable

import redis

from .processes import ManagedProcess, free_port, wait_until

URL = "redis://127.0.0.1:6379/0"
START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
]


def ping() -> bool:
    try:
        return redis.Redis.from_url(URL, socket_timeout=1, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


def ensure_redis(timeout: float = 20) -> str:
    """Return Redis's URL, starting ``redis-server`` first if nothing answers."""
    if ping():
        return URL
    if shutil.which("redis-server") is None:
        raise RuntimeError(
            "Redis is not running at 127.0.0.1:6379 and redis-server is missing: apt-get install -y redis-server"
        )
    subprocess.run(START, check=True, timeout=timeout)
    wait_until(ping, timeout=timeout, what="redis-server at 127.0.0.1:6379")
    return URL


class RedisServer:
    """
    A Redis of a test's own on a free port, for tests that stop and restart
    it; ``host`` and ``wrap`` as for ``DaphneServer``.
    """

    def __init__(self, *, host: str = "127.0.0.1", wrap: Callable[[list[str]], list[str]] = list) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is missing: apt-get install -y redis-server")
        self.port = free_port()
        self.host = host
        self.url = f"redis://{host}:{self.port}/0"
        self.wrap = wrap
        self.process: ManagedProcess | None = None

    def start(self, timeout: float = 20) -> "RedisServer":
        argv = ["redis-server", "--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        if not self.host.startswith("127."):  # a test host's address: reached from the other test hosts
            argv += ["--protected-mode", "no"]
        self.process = ManagedProcess("redis", self.wrap(argv)).start()
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        self.process.wait_ready(client.ping, timeout=timeout)
        return self

    def kill(self) -> None:
        self.process.kill()

    def restart(self, timeout: float = 20) -> "RedisServer":
        """Kill it (nothing is saved, so it comes back empty) and start it again on the same port."""
        self.kill()
        return self.start(timeout)

    def flush(self) -> None:
        """FLUSHALL: every key gone, as an operator's mistake or a failover to an empty replica leaves it."""
        redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5).flushall()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
