"""
The admin in a real browser (Debian's Chromium through Playwright): a staff
member logs in, finds a live connection and disconnects it, and the person's
socket closes.
"""

import pytest
from playwright.sync_api import expect

from chat import protocol

from .support.blocking_client import BlockingChatClient
from .support.browser import chromium
from .support.daphne import DaphneServer
from .support.operators import ServerDatabase, new_user


@pytest.fixture(scope="module")
def operator():
    return new_user("operator")


@pytest.fixture(scope="module")
def admin_server(server_env, operator):
    """A daphne process whose Django database (a fresh SQLite file) holds the operator."""
    database = ServerDatabase.sqlite()
    server = None
    try:
        database.prepare(server_env, [operator])
        server = DaphneServer({**server_env, "DATABASE_URL": database.url}, name="daphne-admin").start()
        yield server
    finally:
        if server is not None:
            server.stop()
        database.drop()


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def test_staff_log_in_find_a_live_connection_and_disconnect_it(admin_server, operator, page, room):
    person = BlockingChatClient(admin_server.ws_url, room, "Ana")
    try:
        page.goto(f"{admin_server.url}/admin/")
        page.fill("#id_username", operator.username)
        page.fill("#id_password", operator.password)
        page.click("input[type=submit]")
        page.get_by_role("link", name="Connections").click()
        page.fill("#room-filter", room)
        page.get_by_role("button", name="Search").click()

        row = page.locator(f'tr[data-connection-id="{person.connection_id}"]')
        expect(row).to_contain_text("Ana")
        expect(page.locator(f'.room-total[data-room="{room}"]')).to_have_text("1")
        row.get_by_role("checkbox").check()
        page.select_option("select[name=action]", "disconnect")
        page.get_by_role("button", name="Go").click()
        expect(page.locator(".messagelist")).to_contain_text("Disconnected 1 connection")

        code, _ = person.closed_with()
        assert code == protocol.CLOSE_BY_OPERATOR
    finally:
        person.close()
