"""
Django's database for daphne processes under test, and the people who log in
to it: a fresh SQLite file or PostgreSQL database, migrated with
``manage.py migrate``, holding staff and non-staff users.
"""

import json
import re
import secrets
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from .processes import ROOT

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

# Every permission of the chat app's connections.
ALL_PERMISSIONS = ["view_liveconnection", "disconnect_connection", "message_connection"]

# Runs inside ``manage.py shell``: makes each user, then a logged-in session for it.
_USERS_SCRIPT = """
import json, os
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.backends.db import SessionStore
sessions = {}
for spec in json.loads(os.environ["TEST_USERS"]):
    user = User.objects.create_user(spec["username"], password=spec["password"], is_staff=spec["staff"])
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="chat", codename__in=spec["perms"]))
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    sessions[spec["username"]] = session.session_key
print("SESSIONS " + json.dumps(sessions))
"""


@dataclass
class User:
    username: str
    password: str
    staff: bool
    perms: list[str]
    session_key: str = ""


class ServerDatabase:
    """A database of its own for this test run's daphne processes (``.url`` is their DATABASE_URL)."""

    def __init__(self, url: str, postgres_name: str | None = None, path: Path | None = None) -> None:
        self.url = url
        self.postgres_name = postgres_name
        self.path = path

    @classmethod
    def sqlite(cls) -> "ServerDatabase":
        path = Path(tempfile.mkstemp(prefix="chat-admin-", suffix=".sqlite3")[1])
        return cls(f"sqlite:///{path}", path=path)

    @classmethod
    def postgresql(cls) -> "ServerDatabase":
        import psycopg

        name = f"chat_test_{uuid.uuid4().hex[:10]}"
        try:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as error:
            raise RuntimeError(
                f"PostgreSQL does not answer at 127.0.0.1:5432 ({error}). Start it with: {POSTGRES_START}"
            ) from None
        return cls(f"postgresql://postgres@127.0.0.1:5432/{name}", postgres_name=name)

    def manage(self, env: dict[str, str], *args: str, timeout: float = 120) -> str:
        """Run ``manage.py`` against this database; its output, or an error showing it."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**env, "DATABASE_URL": self.url},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def prepare(self, env: dict[str, str], users: list[User]) -> None:
        """Migrate, then add ``users`` (each gets a logged-in ``session_key``)."""
        self.manage(env, "migrate", "--noinput")
        specs = json.dumps([u.__dict__ for u in users])
        output = self.manage({**env, "TEST_USERS": specs}, "shell", "-c", _USERS_SCRIPT)
        sessions = json.loads(output.split("SESSIONS ", 1)[1])
        for user in users:
            user.session_key = sessions[user.username]

    def query(self, sql: str, *params) -> list[tuple]:
        """Rows from this database (to read what the admin logged)."""
        if self.postgres_name:
            import psycopg

            with psycopg.connect(self.url, connect_timeout=5) as connection:
                return connection.execute(sql.replace("?", "%s"), params).fetchall()
        import sqlite3

        with sqlite3.connect(self.path) as connection:
            return connection.execute(sql, params).fetchall()

    def drop(self) -> None:
        if self.postgres_name:
            import psycopg

            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{self.postgres_name}" WITH (FORCE)')
        if self.path:
            self.path.unlink(missing_ok=True)


def new_user(username: str, *, staff: bool = True, perms: list[str] | None = None) -> User:
    return User(username, f"pw-{uuid.uuid4().hex}", staff, list(ALL_PERMISSIONS if perms is None else perms))


def admin_login(base_url: str, user: User) -> requests.Session:
    """Log in through the admin's own login form, as a person would; the session carries the cookies."""
    session = requests.Session()
    page = session.get(f"{base_url}/admin/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{base_url}/admin/login/?next=/admin/",
        data={"csrfmiddlewaretoken": token, "username": user.username, "password": user.password, "next": "/admin/"},
        timeout=10,
        allow_redirects=False,
    )
    assert response.status_code == 302, f"login as {user.username} failed: {response.status_code}"
    return session


def csrf_token(session: requests.Session, page_url: str) -> str:
    """The CSRF token of a form on ``page_url``."""
    page = session.get(page_url, timeout=10)
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def session_of(user: User) -> requests.Session:
    """A browser session already logged in as ``user``, with a CSRF cookie to echo (for the API)."""
    session = requests.Session()
    session.cookies.set("sessionid", user.session_key)
    csrf = secrets.token_hex(16)
    session.cookies.set("csrftoken", csrf)
    session.headers["X-CSRFToken"] = csrf
    return session


@contextmanager
def servers_with_users(server_env: dict[str, str], users: list[User], names: tuple[str, ...], **env: str) -> Iterator:
    """
    Daphne processes named ``names`` sharing a database of their own in which
    ``users`` exist (each with a logged-in session); all stop after.
    """
    from .daphne import DaphneServer

    database = ServerDatabase.sqlite()
    servers = []
    try:
        database.prepare(server_env, users)
        full = {**server_env, "DATABASE_URL": database.url, **env}
        for name in names:
            servers.append(DaphneServer(full, name=name))
            servers[-1].start()
        yield tuple(servers)
    finally:
        for server in servers:
            server.stop()
        database.drop()
