"""A real S3 endpoint over HTTP on 127.0.0.1: moto's server mode, one bucket for static files."""

import boto3
from moto.server import ThreadedMotoServer

from .aws_recorder import unrecorded
from .processes import free_port, port_open, wait_until

BUCKET = "chat-static"  # the example bucket deploy/iam/ names
REGION = "us-east-1"


class S3Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self, timeout: float = 20) -> "S3Server":
        self.server.start()
        wait_until(lambda: port_open(self.port), timeout=timeout, what="moto S3 server")
        self.client().create_bucket(Bucket=BUCKET)
        return self

    def stop(self) -> None:
        self.server.stop()

    def client(self):
        """A client for the test's own looks at the bucket (not recorded as the application's)."""
        with unrecorded():
            return boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id="local",
                aws_secret_access_key="local",
            )

    def environment(self, **extra: str) -> dict[str, str]:
        """Settings that put the app's static files in this server's bucket."""
        return {
            "AWS_STORAGE_BUCKET_NAME": BUCKET,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_S3_REGION_NAME": REGION,
            **extra,
        }
