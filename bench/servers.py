"""
What the benchmark runs against: DynamoDB Local, Redis, and server processes
on free ports on 127.0.0.1 (the product and the baseline under daphne, the
ceiling on its own), with their CPU time and memory read from /proc.
"""

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from chat.stores.dynamodb import INSTANCE_INDEX
from tests.support.daphne import DaphneServer
from tests.support.dynamodb_local import CREDENTIALS, DynamoDBLocal
from tests.support.processes import ROOT, ManagedProcess, port_open
from tests.support.redis import ensure_redis

logger = logging.getLogger(__name__)

SECRET_KEY = "benchmark-secret-key-not-for-deployment-0123456789"
# The load generator's senders send faster than a person (up to a message a
# second per room, or the scale-out rate from one socket): the product's
# per-socket rate limit (10/s, burst 20) is raised so that it refuses nothing.
RATE_LIMIT = "100000"
# A product process is stopped only once the bench has closed its sockets: a drain
# (CHAT_DRAIN_SECONDS, 10 by default) has nothing to spread, and would only hold up the next scenario.
DRAIN_SECONDS = "1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The servers a run compares: the product, the Channels tutorial (bench/baseline/)
# and the bare websockets server (bench/ceiling.py).
KINDS = ("product", "baseline", "ceiling")
# Kinds whose first frame is a welcome: a socket of theirs is ready once it came.
WELCOMES = frozenset({"product", "ceiling"})
# The product's registry table (CHAT_CONNECTIONS_TABLE).
CONNECTIONS_TABLE = "ChatConnections"


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
    It samples 250 times a second, only the thread holding the GIL
    (``--gil``): each sample is the process's Python spending CPU there,
    not a thread waiting for DynamoDB or for the GIL.
    """

    def __init__(self, server: DaphneServer | None, label: str, seconds: float = 10) -> None:
        self.process: subprocess.Popen | None = None
        self.path: str | None = None
        directory = getattr(server, "profile_dir", None)
        if directory is None:
            return
        self.path = str(Path(directory) / f"{label}.txt")
        argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "--gil", "-r", "250"]
        argv += ["-f", "raw"]
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


class UvicornServer(DaphneServer):
    """
    The product's own application under uvicorn (its websockets-sansio protocol):
    a lever only, to see what the ASGI server costs. daphne is what ships:
    the README, Procfile and Dockerfile run it, and its socket patches
    (chat.daphne_sockets: outbound cap, pings, room frames written straight
    to the socket) and SIGTERM drain have no part here.
    """

    def _process(self) -> ManagedProcess:
        argv = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--ws", "websockets-sansio", "--lifespan", "off", "--no-access-log", "--log-level", "warning"]
        argv += ["chatsite.asgi:application"]
        return ManagedProcess(self.name, argv, env=self.env)


class CeilingServer(DaphneServer):
    """The bare websockets server of bench/ceiling.py, started, awaited and stopped as a daphne process is."""

    def _process(self) -> ManagedProcess:
        argv = [sys.executable, "-m", "bench.ceiling", "--host", "127.0.0.1", "--port", str(self.port)]
        return ManagedProcess(self.name, argv, env=self.env)


class Stack:
    """
    DynamoDB Local, Redis, collected static files, a migrated database and
    the tables: everything a product process needs. ``server(kind)`` starts
    one server process of any kind; ``stop()`` stops all it started.
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
        self.dynamodb = DynamoDBLocal()
        env = {**os.environ, **self.product_env()}

        def manage(*command: str) -> subprocess.Popen:
            return subprocess.Popen(
                [sys.executable, "manage.py", *command],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )

        # Static files and the database need no DynamoDB: prepared while it starts, then the tables.
        started = [manage("collectstatic", "--noinput", "-v", "0"), manage("migrate", "--noinput", "-v", "0")]
        try:
            self.dynamodb.start()
            started.append(manage("ensure_tables"))
            for done in started:
                output = done.communicate(timeout=180)[0]
                if done.returncode != 0:
                    raise RuntimeError(f"manage.py {done.args[2]} failed:\n{output}")
        finally:
            for done in started:
                if done.poll() is None:
                    done.kill()
                    done.wait(timeout=10)
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
            "CHAT_CONNECTIONS_TABLE": CONNECTIONS_TABLE,
            "CHAT_LOG_LEVEL": "WARNING",
            "CHAT_RATE_LIMIT_PER_SECOND": RATE_LIMIT,
            "CHAT_RATE_LIMIT_BURST": RATE_LIMIT,
            "CHAT_DRAIN_SECONDS": DRAIN_SECONDS,
            **extra,
        }

    def baseline_env(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "bench.baseline.settings",
            "REDIS_URL": self.redis_url,
            "BASELINE_REDIS_PREFIX": f"{self.prefix}-baseline",
        }

    def server(self, kind: str, name: str, **extra: str) -> DaphneServer:
        """Start a server process: ``kind`` is one of ``KINDS``; ``extra`` is product settings."""
        return self.start_all([self.prepare(kind, name, **extra)])[0]

    def prepare(self, kind: str, name: str, **extra: str) -> DaphneServer:
        """A server process of ``kind`` not started yet: ``start_all`` starts it."""
        if kind == "product":
            server = DaphneServer(self.product_env(**extra), name=name)
        elif kind == "baseline":
            server = BaselineServer(self.baseline_env(), name=name)
        elif kind == "ceiling":
            server = CeilingServer({}, name=name)
        else:
            raise ValueError(f"no server kind {kind!r}: use one of {', '.join(KINDS)}")
        if kind == "product" and self.profile_dir is not None:
            server.profile_dir = self.profile_dir
        return server

    def start_all(self, servers: list[DaphneServer], timeout: float = 60) -> list[DaphneServer]:
        """Start these processes side by side, then wait (bounded) until each listens."""
        for server in servers:
            self.servers.append(server)
            server.process.start()
        for server in servers:
            server.process.wait_ready(lambda server=server: port_open(server.port, server.host), timeout=timeout)
        return servers

    def registered(self, instance_ids: list[str]) -> int:
        """How many connections the product's registry holds for these server processes (``CHAT_INSTANCE_ID``)."""
        client = self.dynamodb.client()
        total = 0
        for instance_id in instance_ids:
            params = {
                "TableName": CONNECTIONS_TABLE,
                "IndexName": INSTANCE_INDEX,
                "KeyConditionExpression": "instanceId = :instance",
                "ExpressionAttributeValues": {":instance": {"S": instance_id}},
                "Select": "COUNT",
            }
            for _ in range(10_000):  # bounded: DynamoDB pages at 1 MB read, a few thousand items each
                page = client.query(**params)
                total += page["Count"]
                if "LastEvaluatedKey" not in page:
                    break
                params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return total

    def stop_servers(self) -> None:
        while self.servers:
            self.servers.pop().stop()

    def stop(self) -> None:
        self.stop_servers()
        if self.dynamodb is not None:
            self.dynamodb.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
