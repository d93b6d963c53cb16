"""
The real parts every test talks to: DynamoDB Local, Redis, and daphne
processes on free ports, each with a bounded wait until it answers.
"""

import os
import subprocess
import uuid

import pytest
from django.core.management import call_command
from django.test import override_settings

from .support import aws_recorder
from .support.daphne import DaphneServer
from .support.dynamodb_local import CREDENTIALS, DynamoDBLocal
from .support.processes import ROOT
from .support.recorded import python_argv
from .support.redis import ensure_redis

# Every process records its AWS operations; tests/test_iam.py audits them last. Figures
# that tests measure are shown at the end (tests/support/figures.py).
pytest_plugins = ["tests.support.aws_audit", "tests.support.figures"]

os.environ.update(CREDENTIALS)

TEST_SECRET_KEY = "test-secret-key-not-for-deployment-0123456789abcdef"


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


@pytest.fixture(scope="session")
def static_root(tmp_path_factory) -> str:
    """Static files collected once, as a deployment does before serving with DEBUG off."""
    root = tmp_path_factory.mktemp("staticfiles")
    env = {
        **os.environ,
        **CREDENTIALS,
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DJANGO_SECRET_KEY": TEST_SECRET_KEY,
        "DJANGO_DEBUG": "0",
        "DJANGO_STATIC_ROOT": str(root),
        "AWS_STORAGE_BUCKET_NAME": "",
    }
    argv = python_argv("manage.py", "collectstatic", "--noinput", "-v", "0")
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"collectstatic failed:\n{done.stdout}{done.stderr}"
    return str(root)


@pytest.fixture(scope="session", autouse=True)
def chat_settings(dynamodb_local, redis_url, redis_prefix, static_root, django_db_blocker):
    """Point the in-process app at DynamoDB Local and Redis, and create the tables."""
    from django.conf import settings

    def local(config: dict) -> dict:
        return {**config, "OPTIONS": {**config["OPTIONS"], "endpoint_url": dynamodb_local.endpoint}}

    layers = {
        "default": {
            "BACKEND": "chat.layers.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": redis_prefix},
        }
    }
    override = override_settings(
        CHAT_CONNECTION_STORE=local(settings.CHAT_CONNECTION_STORE),
        CHAT_MESSAGE_STORE=local(settings.CHAT_MESSAGE_STORE),
        CHAT_MODERATION_STORE=local(settings.CHAT_MODERATION_STORE),
        CHANNEL_LAYERS=layers,
        DYNAMODB_ENDPOINT_URL=dynamodb_local.endpoint,
        STATIC_ROOT=static_root,
    )
    override.enable()
    call_command("ensure_tables")
    yield settings
    override.disable()


@pytest.fixture(autouse=True)
def registered_names_read_afresh():
    """
    A test's users are rolled back with it, and a rollback sends no
    post_delete: the in-process set of registered names, which a connect may
    trust for a second, is read afresh for each test.
    """
    from chat.names import registered_names

    registered_names.invalidate()


@pytest.fixture(scope="session")
def server_database(tmp_path_factory) -> str:
    """A migrated SQLite database for the daphne processes of this run."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'chat.sqlite3'}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    subprocess.run(
        python_argv("manage.py", "migrate", "--noinput", "-v", "0"), cwd=ROOT, env=env, check=True, timeout=120
    )
    return url


@pytest.fixture(scope="session")
def server_env(dynamodb_local, redis_url, redis_prefix, static_root, server_database) -> dict[str, str]:
    """The environment a daphne process of this run starts with."""
    return {
        "DATABASE_URL": server_database,
        **CREDENTIALS,
        **aws_recorder.environment(),
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DJANGO_SECRET_KEY": TEST_SECRET_KEY,
        "DJANGO_DEBUG": "0",
        # Plain http on 127.0.0.1: no https redirect, no secure-only cookies.
        "DJANGO_SECURE": "0",
        "DJANGO_STATIC_ROOT": static_root,
        "AWS_STORAGE_BUCKET_NAME": "",
        "DYNAMODB_ENDPOINT_URL": dynamodb_local.endpoint,
        "REDIS_URL": redis_url,
        "CHAT_REDIS_PREFIX": redis_prefix,
        "CHAT_LOG_LEVEL": "INFO",
        # A stopped server drains its sockets for a second, not ten: tests that judge a drain set their own.
        "CHAT_DRAIN_SECONDS": "1",
    }


@pytest.fixture
def start_server(server_env):
    """
    Start daphne processes (extra environment as keyword arguments; ``clock_offset="+3s"`` runs one
    under libfaketime with its clock that far ahead); all stop after the test.
    """
    servers: list[DaphneServer] = []

    def start(clock_offset: str | None = None, **env: str) -> DaphneServer:
        server = DaphneServer({**server_env, **env}, name=f"daphne-{len(servers) + 1}", clock_offset=clock_offset)
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
