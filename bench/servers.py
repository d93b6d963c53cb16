"""
What the benchmark runs against: DynamoDB Local, Redis, and daphne processes
(the product, or the baseline) on free ports on 127.0.0.1, with their CPU time
and memory read from /proc.
"""

import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from tests.support.daphne import DaphneServer
from tests.support.dynamodb_local import CREDENTIALS, DynamoDBLocal
from tests.support.processes import ROOT, ManagedProcess
from tests.support.redis import ensure_redis

logger = logging.getLogger(__name__)

SECRET_KEY = "benchmark-secret-key-not-for-deployment-0123456789"
# The load generator's senders send faster than a person (up to a message a
# second per room, or the scale-out rate from one socket): the product's
# per-socket rate limit (10/s, burst 20) is raised so that it refuses nothing.
RATE_LIMIT = "100000"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def raise_open_files() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    """Resident memory of a process (/proc/<pid>/status VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class Profiler:
    """
    ``py-spy record -f raw`` on a product process for a scenario's busy
    seconds, when the run was asked to profile (``--profile DIR``) and
    ``server`` has ``profile_dir``; otherwise nothing. ``path`` is the output.
    """

    def __init__(self, server: DaphneServer | None, label: str, seconds: float = 10) -> None:
        self.process: subprocess.Popen | None = None
        self.path: str | None = None
        directory = getattr(server, "profile_dir", None)
        if directory is None:
            return
        self.path = str(Path(directory) / f"{label}.txt")
        argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "-f", "raw"]
        argv += ["-d", str(max(1, round(seconds))), "-o", self.path, "-p", str(server.process.process.pid)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class BaselineServer(DaphneServer):
    """The tutorial-style consumer of bench/baseline/ under daphne."""

    def _process(self) -> ManagedProcess:
        argv = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "bench.baseline.asgi:application",
        ]
        return ManagedProcess(self.name, argv, env=self.env)


class Stack:
    """
    DynamoDB Local, Redis, collected static files, a migrated database and
    the tables: everything a product process needs. ``server(kind)`` starts
    one daphne process of either kind; ``stop()`` stops all it started.
    """

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="chat-bench-"))
        self.prefix = f"b{uuid.uuid4().hex[:8]}"
        self.dynamodb: DynamoDBLocal | None = None
        self.redis_url = ""
        self.servers: list[DaphneServer] = []
        # Set to a directory to profile the product's busy seconds with py-spy.
        self.profile_dir: Path | None = None

    def start(self) -> "Stack":
        self.redis_url = ensure_redis()
        self.dynamodb = DynamoDBLocal().start()
        env = self.product_env()
        for command in (
            ["collectstatic", "--noinput", "-v", "0"],
            ["migrate", "--noinput", "-v", "0"],
            ["ensure_tables"],
        ):
            done = subprocess.run(
                [sys.executable, "manage.py", *command],
                cwd=ROOT,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=180,
            )
            if done.returncode != 0:
                raise RuntimeError(f"manage.py {command[0]} failed:\n{done.stdout}{done.stderr}")
        return self

    def product_env(self, **extra: str) -> dict[str, str]:
        return {
            **CREDENTIALS,
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "DJANGO_SECRET_KEY": SECRET_KEY,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECURE": "0",
            "DJANGO_STATIC_ROOT": str(self.workdir / "static"),
            "DATABASE_URL": f"sqlite:///{self.workdir / 'chat.sqlite3'}",
            "AWS_STORAGE_BUCKET_NAME": "",
            "DYNAMODB_ENDPOINT_URL": self.dynamodb.endpoint,
            "REDIS_URL": self.redis_url,
            "CHAT_REDIS_PREFIX": self.prefix,
            "CHAT_LOG_LEVEL": "WARNING",
            "CHAT_RATE_LIMIT_PER_SECOND": RATE_LIMIT,
            "CHAT_RATE_LIMIT_BURST": RATE_LIMIT,
            **extra,
        }

    def baseline_env(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "bench.baseline.settings",
            "REDIS_URL": self.redis_url,
            "BASELINE_REDIS_PREFIX": f"{self.prefix}-baseline",
        }

    def server(self, kind: str, name: str, **extra: str) -> DaphneServer:
        """Start a daphne process: ``kind`` is ``product`` or ``baseline``."""
        if kind == "product":
            server = DaphneServer(self.product_env(**extra), name=name)
        elif kind == "baseline":
            server = BaselineServer(self.baseline_env(), name=name)
        else:
            raise ValueError(f"no server kind {kind!r}")
        self.servers.append(server)
        if kind == "product" and self.profile_dir is not None:
            server.profile_dir = self.profile_dir
        return server.start(timeout=60)

    def stop_servers(self) -> None:
        while self.servers:
            self.servers.pop().stop()

    def stop(self) -> None:
        self.stop_servers()
        if self.dynamodb is not None:
            self.dynamodb.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
