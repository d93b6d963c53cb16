"""
The chat page when the server refuses or ends a connection: the person reads
why, and the page reconnects by itself only when that makes sense.
"""

import uuid

import pytest
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from ..support.blocking_client import BlockingChatClient
from ..support.chat_page import WAIT_MS, ChatPage
from ..support.daphne import DaphneServer

TOKEN = f"token-{uuid.uuid4().hex}"
# Longer than the page's first retry may wait after a drop (1 s at most).
QUIET_MS = 2_500


@pytest.fixture(scope="module")
def strict_server(server_env):
    """A server with the management API on."""
    env = {**server_env, "CHAT_MANAGEMENT_TOKEN": TOKEN}
    server = DaphneServer(env, name="daphne-strict").start()
    yield server
    server.stop()


def opens_no_socket(chat: ChatPage, within_ms: int = QUIET_MS) -> bool:
    """True when the page opens no WebSocket within ``within_ms``."""
    try:
        chat.page.wait_for_event("websocket", timeout=within_ms)
    except PlaywrightTimeoutError:
        return True
    return False


def test_an_operator_close_shows_the_notice_and_waits_for_the_person(open_chat, strict_server, room):
    ann = open_chat(room, "Ann", base_url=strict_server.url)
    response = requests.delete(
        f"{strict_server.url}/@connections/{ann.connection_id()}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 204

    notice = ann.page.locator("#message-list .notice")
    expect(notice).to_contain_text("An operator closed this connection.")
    expect(ann.status).to_have_attribute("data-state", "offline")
    expect(ann.status).to_contain_text("An operator closed your connection.")
    expect(ann.reconnect_button).to_have_text("Reconnect")
    expect(ann.send_button).to_be_disabled()
    assert opens_no_socket(ann)
    expect(ann.status).to_have_attribute("data-state", "offline")

    ann.reconnect_button.click()
    ann.wait_online()
    ann.say("back after the operator")


def test_an_idle_close_says_why_and_carries_on_when_the_person_is_back(new_context, start_server, room):
    server = start_server(CHAT_IDLE_TIMEOUT="2")
    ann = ChatPage.open(new_context(name="Ann"), server.url, room).wait_online()
    expect(ann.status).to_have_attribute("data-state", "paused", timeout=WAIT_MS)
    expect(ann.status).to_contain_text("inactive for a while")
    expect(ann.reconnect_button).to_be_visible()
    assert opens_no_socket(ann)

    with ann.page.expect_websocket():
        ann.composer.click()
    ann.wait_online()


def test_a_connection_at_its_longest_life_is_renewed_without_losing_a_message(new_context, start_server, room):
    short, steady = start_server(CHAT_MAX_CONNECTION_DURATION="2"), start_server()
    ann = ChatPage.open(new_context(name="Ann"), short.url, room).wait_online()
    first = ann.connection_id()
    bob = BlockingChatClient(steady.ws_url, room, "Bob")
    try:
        bob.say("one")
        # The page's connection is replaced by a new one, by itself.
        you = ann.page.locator("#member-list .member", has=ann.page.locator(".member-you"))
        expect(you).not_to_have_attribute("data-connection-id", first, timeout=WAIT_MS)
        bob.say("two")
        bob.say("three")
        ann.wait_online()
        expect(ann.message("three")).to_have_count(1)
        assert ann.message_texts() == ["one", "two", "three"]
        expect(ann.events.filter(has_text="back online")).to_have_count(0)
    finally:
        bob.close()
