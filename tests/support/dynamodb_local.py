"""Amazon DynamoDB Local, the real engine, on a free port."""

import boto3
from botocore.config import Config

from .aws_recorder import unrecorded
from .processes import ROOT, ManagedProcess, free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


class DynamoDBLocal:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = ManagedProcess(
            "dynamodb-local", [str(ROOT / "bin" / "dynamodb-local"), "-inMemory", "-port", str(self.port)]
        )

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
        self.process.start()
        client = self.client()
        self.process.wait_ready(lambda: client.list_tables(Limit=1) is not None, timeout=timeout)
        return self

    def stop(self) -> None:
        self.process.stop()
