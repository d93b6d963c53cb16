"""Production settings: Django's deployment checklist finds nothing to report."""

import os
import secrets
import subprocess
import sys

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
