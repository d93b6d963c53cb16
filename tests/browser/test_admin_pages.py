"""The Django admin still works under the chat's Content-Security-Policy."""

import os
import subprocess
import sys

from playwright.sync_api import expect

from ..support.chat_page import WAIT_MS
from ..support.processes import ROOT

CREATE_STAFF = (
    "from django.contrib.auth import get_user_model; "
    "get_user_model().objects.create_superuser('operator', 'operator@example.com', 'correct horse battery')"
)


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)


def test_an_operator_signs_in_to_the_admin_without_policy_violations(new_context, server_env, start_server, tmp_path):
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'admin.sqlite3'}"}
    env = {**os.environ, **server_env, **database}
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "-c", CREATE_STAFF)
    server = start_server(**database)

    page = new_context().new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    response = page.goto(server.url + "/admin/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible(timeout=WAIT_MS)
    page.goto(server.url + "/admin/auth/user/")
    expect(page.get_by_role("link", name="operator")).to_be_visible(timeout=WAIT_MS)
    assert [line for line in console if "Content Security Policy" in line] == []
