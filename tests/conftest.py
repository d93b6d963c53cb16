"""
The real parts every test talks to: DynamoDB Local, Redis, and daphne
processes on free ports, each with a bounded wait until it answers.
"""

import os
import subprocess
import sys
import uuid

import pytest
from django.core.management import call_command
from django.test import override_settings

from .support.daphne import DaphneServer
from .support.dynamodb_local import CREDENTIALS, DynamoDBLocal
from .support.processes import ROOT
from .support.redis import ensure_redis

os.environ.update(CREDENTIALS)


@pytest.fixture(scope="session")
def dynamodb_local():
    server = DynamoDBLocal().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    return ensure_redis()


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    """Channel-layer names of this run, apart from any other run on the same Redis."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session", autouse=True)
def chat_settings(dynamodb_local, redis_url, redis_prefix, django_db_blocker):
    """Point the in-process app at DynamoDB Local and Redis, and create the tables."""
    from django.conf import settings

    def local(config: dict) -> dict:
        return {**config, "OPTIONS": {**config["OPTIONS"], "endpoint_url": dynamodb_local.endpoint}}

    layers = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": redis_prefix},
        }
    }
    override = override_settings(
        CHAT_CONNECTION_STORE=local(settings.CHAT_CONNECTION_STORE),
        CHAT_MESSAGE_STORE=local(settings.CHAT_MESSAGE_STORE),
        CHANNEL_LAYERS=layers,
        DYNAMODB_ENDPOINT_URL=dynamodb_local.endpoint,
    )
    override.enable()
    call_command("ensure_tables")
    yield settings
    override.disable()


@pytest.fixture(scope="session")
def server_database(tmp_path_factory) -> str:
    """A migrated SQLite database for the daphne processes of this run."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'chat.sqlite3'}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120
    )
    return url


@pytest.fixture(scope="session")
def server_env(dynamodb_local, redis_url, redis_prefix, server_database) -> dict[str, str]:
    """The environment a daphne process of this run starts with."""
    return {
        "DATABASE_URL": server_database,
        **CREDENTIALS,
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DJANGO_SECRET_KEY": "test-secret-key-not-for-deployment-0123456789abcdef",
        "DJANGO_DEBUG": "0",
        "DYNAMODB_ENDPOINT_URL": dynamodb_local.endpoint,
        "REDIS_URL": redis_url,
        "CHAT_REDIS_PREFIX": redis_prefix,
        "CHAT_LOG_LEVEL": "INFO",
    }


@pytest.fixture
def start_server(server_env):
    """Start daphne processes (extra environment as keyword arguments); all stop after the test."""
    servers: list[DaphneServer] = []

    def start(**env: str) -> DaphneServer:
        server = DaphneServer({**server_env, **env}, name=f"daphne-{len(servers) + 1}")
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server(server_env):
    """One daphne process shared by a module's tests."""
    server = DaphneServer(server_env).start()
    yield server
    server.stop()


@pytest.fixture
def room() -> str:
    """A room no other test uses."""
    return f"r-{uuid.uuid4().hex[:12]}"
