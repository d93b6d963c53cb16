"""
The chat page and the room's history: what was said before you came, older
pages on request, and nothing lost or doubled across a reconnect.
"""

import re

from playwright.sync_api import expect

from ..support.blocking_client import BlockingChatClient
from ..support.chat_page import WAIT_MS, ChatPage

SHORT = {"width": 800, "height": 500}


def test_a_newcomer_sees_the_latest_messages_and_live_ones_follow_on(open_chat, new_context, server, room):
    bob = BlockingChatClient(server.ws_url, room, "Bob")
    try:
        for text in ("first from Bob", "second from Bob", "third from Bob"):
            bob.say(text)
        context = new_context(name="Ann")
        ann = ChatPage.open(context, server.url, room).wait_online()
        expect(ann.messages).to_have_count(3)
        assert ann.message_texts() == ["first from Bob", "second from Bob", "third from Bob"]
        expect(ann.message("first from Bob").locator(".msg-name")).to_have_text("Bob")
        # One run of Bob's: the name shows once, over the first of them.
        expect(ann.message("third from Bob")).to_have_class(re.compile("msg-continued"))

        bob.say("live from Bob")
        live = ann.message("live from Bob")
        expect(live).to_have_count(1)
        expect(live).to_have_class(re.compile("msg-continued"))
        ann.say("mine, from before")

        # Back later in the same browser: the history knows which messages were Ann's.
        again = ChatPage.open(context, server.url, room).wait_online()
        expect(again.messages).to_have_count(5)
        mine = again.message("mine, from before")
        expect(mine).to_have_class(re.compile("msg-own"))
        expect(mine.locator(".msg-name")).to_have_text("You")
        expect(again.message("live from Bob")).not_to_have_class(re.compile("msg-own"))
        expect(again.earlier).to_be_hidden()
    finally:
        bob.close()


def test_load_earlier_messages_pages_back_in_place_until_the_beginning(new_context, start_server, room):
    server = start_server(CHAT_HISTORY_LIMIT="5")
    bob = BlockingChatClient(server.ws_url, room, "Bob")
    try:
        texts = [f"message number {i}\nwith a second line" for i in range(12)]
        for text in texts:
            bob.say(text)
        ann = ChatPage.open(new_context(name="Ann", viewport=SHORT), server.url, room).wait_online()
        expect(ann.messages).to_have_count(5)
        assert ann.message_texts() == texts[-5:]

        box = ann.page.locator("#messages")
        box.evaluate("box => { box.scrollTop = 0; }")
        anchor = ann.message("message number 7").locator(".msg-text")
        top = anchor.bounding_box()["y"]
        ann.earlier.click()
        expect(ann.messages).to_have_count(10)
        assert ann.message_texts() == texts[2:]
        # What the reader was looking at stays where it was; the new ones are above it.
        assert abs(anchor.bounding_box()["y"] - top) <= 1
        expect(ann.message("message number 2")).not_to_be_in_viewport()

        ann.earlier.click()
        expect(ann.messages).to_have_count(12)
        assert ann.message_texts() == texts
        expect(ann.earlier).to_be_hidden()
    finally:
        bob.close()


def test_a_page_that_lost_its_server_shows_every_missed_message_once(new_context, start_server, room):
    # The welcome alone would carry only the latest 3: the rest must come from ?since=.
    home, other = start_server(CHAT_HISTORY_LIMIT="3"), start_server()
    ann = ChatPage.open(new_context(name="Ann"), home.url, room).wait_online()
    bob = BlockingChatClient(other.ws_url, room, "Bob")
    try:
        bob.say("before the gap")
        expect(ann.message("before the gap")).to_have_count(1)

        home.stop()
        expect(ann.status).to_have_attribute("data-state", "reconnecting", timeout=WAIT_MS)
        missed = [f"missed {i}" for i in range(6)]
        for text in missed:
            bob.say(text)
        home.restart()
        ann.wait_online(timeout=45_000)
        bob.say("after the gap")

        expect(ann.message("after the gap")).to_have_count(1)
        assert ann.message_texts() == ["before the gap", *missed, "after the gap"]
        expect(ann.events.filter(has_text="back online")).to_have_count(1)
    finally:
        bob.close()
