"""Amazon DynamoDB Local, the real engine, on a free port."""

from collections.abc import Callable

import boto3
from botocore.config import Config

from .aws_recorder import unrecorded
from .processes import ROOT, ManagedProcess, free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


class DynamoDBLocal:
    """
    DynamoDB Local on a free port: in memory, or keeping its tables in
    ``db_path`` so that they survive a stop and a start on the same port.
    ``host`` and ``wrap`` as for ``DaphneServer``: where it listens, and
    how its command runs elsewhere (a test host).
    """

    def __init__(
        self,
        port: int | None = None,
        db_path: str | None = None,
        *,
        host: str = "127.0.0.1",
        wrap: Callable[[list[str]], list[str]] = list,
    ) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://{host}:{self.port}"
        storage = ["-sharedDb", "-dbPath", db_path] if db_path else ["-inMemory"]
        self.argv = wrap([str(ROOT / "bin" / "dynamodb-local"), *storage, "-port", str(self.port)])
        self.process = ManagedProcess("dynamodb-local", self.argv)

    def client(self):
        """A client for the test's own looks at the tables (not recorded as the application's)."""
        with unrecorded():
            return boto3.client(
                "dynamodb",
                endpoint_url=self.endpoint,
                region_name="us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",
                config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
            )

    def start(self, timeout: float = 60) -> "DynamoDBLocal":
        if self.process.process is not None:  # started before: a new process on the same port
            self.process = ManagedProcess("dynamodb-local", self.argv)
        self.process.start()
        client = self.client()
        self.process.wait_ready(lambda: client.list_tables(Limit=1) is not None, timeout=timeout)
        return self

    def stop(self) -> None:
        self.process.stop()
