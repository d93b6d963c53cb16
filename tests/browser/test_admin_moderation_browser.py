"""
Moderation from the admin in real browsers: an operator, logged in to the
admin of one daphne process, finds a room on the Rooms page, deletes a
message and mutes its sender; the guests' chat pages (one on each process)
show the tombstone, and the muted person's next message is refused in words.
"""

import re
import time

import pytest
from playwright.sync_api import Locator, Page, expect

from ..support.chat_page import WAIT_MS, ChatPage
from ..support.daphne import DaphneServer
from ..support.operators import ServerDatabase, new_user


@pytest.fixture(scope="module")
def operator():
    return new_user("operator", perms=["view_moderatedroom", "moderate_messages", "moderate_people"])


@pytest.fixture(scope="module")
def servers(server_env, operator):
    """Two daphne processes sharing a Django database (a fresh SQLite file) with the operator in it."""
    database = ServerDatabase.sqlite()
    started: list[DaphneServer] = []
    try:
        database.prepare(server_env, [operator])
        # Heartbeats every 2 s: the admin's process soon lists the rooms the other serves.
        env = {**server_env, "DATABASE_URL": database.url, "CHAT_HEARTBEAT_INTERVAL": "2"}
        for name in ("daphne-admin", "daphne-people"):
            started.append(DaphneServer(env, name=name).start())
        yield started
    finally:
        for server in started:
            server.stop()
        database.drop()


def reload_until_visible(page: Page, locator: Locator, *, timeout: float = 30) -> None:
    """Reload ``page`` until ``locator`` shows (the Rooms page is read once per load), for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            expect(locator).to_be_visible(timeout=1_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.reload()


def test_an_operator_deletes_a_message_and_mutes_its_sender_from_the_admin(servers, operator, new_context, room):
    admin_server, people_server = servers
    # Ann's socket is on the other process than the admin; Bob's on the admin's.
    ann = ChatPage.open(new_context(name="Ann"), people_server.url, room).wait_online()
    bob = ChatPage.open(new_context(name="Bob"), admin_server.url, room).wait_online()
    ann.say("something rude")
    expect(bob.message("something rude")).to_be_visible()
    message_id = ann.message_id("something rude")

    page = new_context().new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{admin_server.url}/admin/")
    page.fill("#id_username", operator.username)
    page.fill("#id_password", operator.password)
    page.click("input[type=submit]")
    page.get_by_role("link", name="Rooms").click()
    page.fill("#searchbar", room)
    page.get_by_role("button", name="Search").click()
    listed = page.locator(f'tr.room[data-room="{room}"]')
    reload_until_visible(page, listed)
    expect(listed.locator(".field-count")).to_have_text("2")
    listed.get_by_role("link", name=room).click()

    # The Messages view, newest first: delete the rude one.
    expect(page.get_by_role("heading", name="Messages, newest first")).to_be_visible()
    row = page.locator(f'tr.message[data-message-id="{message_id}"]')
    expect(row).to_contain_text("something rude")
    expect(row).to_contain_text("Ann")
    row.get_by_role("button", name="Delete").click()
    expect(page.locator(".messagelist")).to_contain_text(f"Deleted message {message_id} in #{room}.")
    expect(row.locator(".tombstone")).to_have_text("deleted")
    expect(row.get_by_role("button", name="Delete")).to_have_count(0)

    # Everyone in the room, on either process, sees the tombstone.
    for person in (bob, ann):
        expect(person.tombstone(message_id)).to_contain_text("message deleted", timeout=WAIT_MS)
        expect(person.message("something rude")).to_have_count(0)

    page.fill("#id_mute_name", "Ann")
    page.fill("#id_mute_minutes", "10")
    page.get_by_role("button", name="Mute", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text(f"Muted Ann in #{room} until")
    expect(page.locator('#mutes tr.mute[data-name="Ann"]')).to_be_visible()
    expect(page.get_by_role("button", name="Lift the mute of Ann")).to_be_visible()

    # The page shows the server's sentence (it says until when), and the refused message goes back into
    # the box rather than being sent again and again.
    ann.composer.fill("can I still talk?")
    ann.composer.press("Enter")
    until = r"until (\d{4}-\d\d-\d\d )?\d\d:\d\d UTC\."
    expect(ann.composer_error).to_have_text(re.compile(rf"You are muted in #{re.escape(room)} {until}"))
    expect(ann.composer).to_have_value("can I still talk?")
    expect(ann.pending).to_have_count(0)
    bob.say("Bob can")
    expect(ann.message("Bob can")).to_be_visible()
    expect(bob.message("can I still talk?")).to_have_count(0)

    assert [line for line in console if "Content Security Policy" in line] == []
    assert ann.errors == [] and bob.errors == []
