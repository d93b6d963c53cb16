"""Production settings: Django's deployment checklist finds nothing to report; wrong ones stop the server."""

import json
import os
import secrets
import subprocess
import sys

import pytest

from .support.processes import ROOT


def test_deploy_check_reports_nothing_with_production_settings():
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "AWS_", "CHAT_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="chat.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://chat.example.com",
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_the_server_refuses_to_start_without_a_secret_key():
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env["DJANGO_SETTINGS_MODULE"] = "chatsite.settings"
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "DJANGO_SECRET_KEY is not set" in done.stderr


def test_an_unknown_channel_layer_stops_the_server_naming_the_choices():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings", "CHAT_CHANNEL_LAYER": "kafka"}
    env.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-deployment-0123456789abcdef")
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "CHAT_CHANNEL_LAYER='kafka' is not a channel layer: use pubsub or core." in done.stderr


def channel_layers(**variables: str) -> subprocess.CompletedProcess:
    """Load the settings with ``variables`` (REDIS_URL and REDIS_URLS unset unless given); print CHANNEL_LAYERS."""
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "REDIS_URLS")}
    env.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-deployment-0123456789abcdef")
    env.update(DJANGO_SETTINGS_MODULE="chatsite.settings", **variables)
    code = "import json; from django.conf import settings; print(json.dumps(settings.CHANNEL_LAYERS['default']))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_redis_urls_spread_the_channel_layer_over_every_server_listed_in_order():
    done = channel_layers(REDIS_URLS=" redis://10.0.2.7:6379/0 ,, redis://10.0.1.5:6379/0 , ", REDIS_URL="")
    assert done.returncode == 0, done.stderr
    layer = json.loads(done.stdout)
    assert layer["BACKEND"] == "chat.layers.RedisPubSubChannelLayer"
    assert layer["CONFIG"]["hosts"] == ["redis://10.0.2.7:6379/0", "redis://10.0.1.5:6379/0"]


def test_one_redis_url_is_one_server_and_none_is_the_in_memory_layer():
    one, none = channel_layers(REDIS_URL="redis://10.0.1.5:6379/0"), channel_layers(REDIS_URLS=" , ")
    assert json.loads(one.stdout)["CONFIG"]["hosts"] == ["redis://10.0.1.5:6379/0"], one.stderr
    assert json.loads(none.stdout)["BACKEND"] == "channels.layers.InMemoryChannelLayer", none.stderr


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"REDIS_URL": "redis://10.0.1.5:6379/0", "REDIS_URLS": "redis://10.0.1.5:6379/0,redis://10.0.2.7:6379/0"},
            "REDIS_URL and REDIS_URLS are both set. Set REDIS_URLS alone",
        ),
        (
            {"REDIS_URL": "redis://10.0.1.5:6379/0,redis://10.0.2.7:6379/0"},
            "REDIS_URL holds several URLs: set REDIS_URLS for several Redis servers.",
        ),
        (
            {"REDIS_URLS": "redis://:pw@10.0.1.5:6379/0,redis://:pw@10.0.1.5:6379/0"},
            "REDIS_URLS names one Redis server twice: list each one once.",
        ),
    ],
    ids=["both", "list-in-redis-url", "twice"],
)
def test_contradictory_redis_settings_stop_the_server_naming_the_fix(variables, message):
    done = channel_layers(**variables)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and message in done.stderr
    assert "pw@" not in done.stderr
