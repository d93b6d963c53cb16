"""
The chat page's outbox and the room's one order: what is written offline
waits as "Sending…" and arrives once, in order; a reload loses nothing; the
page reconnects from the last seq it has and fills a gap it notices.
"""

import re
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import BrowserContext, expect

from ..support.blocking_client import BlockingChatClient
from ..support.chat_page import WAIT_MS, ChatPage, Relay

# How long a page may take to be online again once its server is back: its backoff, plus daphne's start.
BACK_MS = 45_000
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{22,}")


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def socket_urls(context: BrowserContext) -> list[str]:
    """The URL of every WebSocket the context's pages open from now on, in order."""
    urls: list[str] = []
    context.on("page", lambda page: page.on("websocket", lambda socket: urls.append(socket.url)))
    return urls


def test_messages_written_offline_wait_as_sending_and_arrive_once_in_order(new_context, start_server, room):
    home, other = start_server(), start_server()
    ann_context = new_context(name="Ann")
    ann = ChatPage.open(ann_context, home.url, room).wait_online()
    bob = ChatPage.open(new_context(name="Bob"), other.url, room).wait_online()
    ann.say("before the outage")
    expect(bob.message("before the outage")).to_have_count(1)

    home.stop()
    expect(ann.status).to_have_attribute("data-state", "reconnecting")
    ann_context.set_offline(True)
    expect(ann.status).to_have_attribute("data-state", "offline")
    typed = ["first while offline", "second while offline", "third while offline"]
    for text in typed:
        ann.type_and_send(text)  # the send button works offline, and Enter queues
    expect(ann.pending).to_have_count(3)
    assert ann.pending_texts() == typed
    expect(ann.pending.locator(".msg-status")).to_have_text(["Sending…"] * 3)
    expect(ann.pending.first).to_have_class(re.compile("msg-own"))
    assert [entry["text"] for entry in ann.outbox(room)] == typed
    expect(bob.message("first while offline")).to_have_count(0)

    home.restart()
    ann_context.set_offline(False)
    ann.wait_online(timeout=BACK_MS)
    expect(ann.pending).to_have_count(0)
    for text in typed:
        expect(ann.message(text)).to_have_class(re.compile("msg-own"))
    expect(bob.message(typed[-1])).to_have_count(1)
    # Bob's reply follows Ann's three in the room's order: once Ann has it, nothing of hers is still on its way.
    bob.say("after the outage")
    expect(ann.message("after the outage")).to_have_count(1)
    expected = ["before the outage", *typed, "after the outage"]
    assert bob.message_texts() == expected
    assert ann.message_texts() == expected
    assert ann.outbox(room) == []
    assert ann.errors == [] and bob.errors == []


def test_a_reload_while_a_message_waits_does_not_lose_it(new_context, start_server, room):
    home, other = start_server(), start_server()
    ann_context = new_context(name="Ann")
    relay = Relay(ann_context)
    ann = ChatPage.open(ann_context, home.url, room).wait_online()
    bob = ChatPage.open(new_context(name="Bob"), other.url, room).wait_online()
    ann.say("before the reload")

    home.stop()
    expect(ann.status).to_have_attribute("data-state", "reconnecting")
    ann.type_and_send("written before the reload")
    expect(ann.pending).to_have_count(1)

    # The page loads again from its server, but its socket still reaches none.
    relay.refusing = True
    home.restart()
    ann.page.reload()
    expect(ann.status).to_contain_text("Chat unavailable")
    expect(ann.pending).to_have_count(1)
    expect(ann.pending.locator(".msg-text")).to_have_text("written before the reload")
    expect(ann.pending.locator(".msg-status")).to_have_text("Sending…")

    relay.refusing = False
    ann.wait_online(timeout=BACK_MS)
    expect(ann.pending).to_have_count(0)
    expect(ann.message("written before the reload")).to_have_class(re.compile("msg-own"))
    bob.say("after the reload")
    expect(ann.message("after the reload")).to_have_count(1)
    expected = ["before the reload", "written before the reload", "after the reload"]
    assert bob.message_texts() == expected
    assert ann.message_texts() == expected
    assert ann.outbox(room) == []
    assert len(relay.sends_of("written before the reload")) == 1


def test_an_echo_lost_in_a_drop_is_found_in_the_welcome_and_not_sent_again(new_context, server, room):
    context = new_context(name="Ann")
    relay = Relay(context)
    ann = ChatPage.open(context, server.url, room).wait_online()
    bob = BlockingChatClient(server.ws_url, room, "Bob")
    try:
        lost = "its echo never reached the page"
        relay.drop_to_page = relay.close_after = lambda frame: frame.get("message") == lost
        ann.type_and_send(lost)
        # The server has it; the page's socket closed before the echo came, and reconnected.
        expect(ann.message(lost)).to_have_count(1, timeout=WAIT_MS)
        expect(ann.pending).to_have_count(0)
        heard = bob.receive_until(lambda frame: frame["type"] == "message" and frame["message"] == lost)
        assert heard["clientMessageId"] == relay.sends_of(lost)[0]["clientMessageId"]
        bob.say("after the drop")
        expect(ann.message("after the drop")).to_have_count(1)
        # The welcome's history held the echo, which acknowledged it: it was never sent again.
        assert len(relay.sends_of(lost)) == 1
        assert ann.message_texts() == [lost, "after the drop"]
    finally:
        bob.close()


def test_a_gap_in_the_room_order_is_filled_from_history_in_place(new_context, server, room):
    context = new_context(name="Ann")
    relay = Relay(context)
    ann = ChatPage.open(context, server.url, room).wait_online()
    bob = BlockingChatClient(server.ws_url, room, "Bob")
    try:
        bob.say("one")
        expect(ann.message("one")).to_have_count(1)
        relay.drop_to_page = lambda frame: frame.get("type") == "message" and frame.get("message") == "two"
        bob.say("two")
        bob.say("three")
        expect(ann.message("two")).to_have_count(1)
        expect(ann.message("three")).to_have_count(1)
        assert ann.message_texts() == ["one", "two", "three"]
        one_seq = int(ann.message("one").get_attribute("data-seq"))
        asked = [frame for frame in relay.sent if frame.get("action") == "history"]
        assert asked == [{"action": "history", "after": one_seq}]
        seqs = [int(seq) for seq in ann.messages.evaluate_all("items => items.map(item => item.dataset.seq)")]
        assert seqs == [one_seq, one_seq + 1, one_seq + 2]

        bob.say("four")
        expect(ann.message("four")).to_have_count(1)
        assert ann.message_texts() == ["one", "two", "three", "four"]
        assert len([frame for frame in relay.sent if frame.get("action") == "history"]) == 1
    finally:
        bob.close()


def test_a_reconnect_asks_since_the_last_seq_and_the_client_id_stays(new_context, start_server, room):
    server = start_server()
    context = new_context(name="Ann")
    urls = socket_urls(context)
    ann = ChatPage.open(context, server.url, room).wait_online()
    bob = BlockingChatClient(server.ws_url, room, "Bob")
    try:
        bob.say("first from Bob")
        bob.say("second from Bob")
        expect(ann.message("second from Bob")).to_have_count(1)
        last_seq = ann.message("second from Bob").get_attribute("data-seq")
        assert last_seq is not None and last_seq.isdigit()
    finally:
        bob.close()
    first = query(urls[0])
    assert "since" not in first
    client_id = first["clientId"]
    assert CLIENT_ID.fullmatch(client_id)

    server.restart()
    expect(ann.status).not_to_have_attribute("data-state", "online")
    ann.wait_online(timeout=BACK_MS)
    again = query(urls[-1])
    assert again["since"] == last_seq  # a seq, not a message id
    assert again["clientId"] == client_id

    ann.page.reload()
    ann.wait_online()
    assert query(urls[-1])["clientId"] == client_id
    # It is a secret of this browser: nothing on the page shows it.
    assert client_id not in ann.page.content()

    # Another browser has an identity of its own.
    bob_context = new_context(name="Bob")
    bob_urls = socket_urls(bob_context)
    ChatPage.open(bob_context, server.url, room).wait_online()
    assert CLIENT_ID.fullmatch(query(bob_urls[0])["clientId"])
    assert query(bob_urls[0])["clientId"] != client_id


def test_a_burst_past_the_rate_limit_waits_in_the_outbox_and_arrives_in_order(new_context, start_server, room):
    server = start_server(CHAT_RATE_LIMIT_PER_SECOND="1", CHAT_RATE_LIMIT_BURST="3")
    ann = ChatPage.open(new_context(name="Ann"), server.url, room).wait_online()
    bob = ChatPage.open(new_context(name="Bob"), server.url, room).wait_online()
    burst = [f"burst {i}" for i in range(6)]
    for text in burst:
        ann.type_and_send(text)
    expect(ann.composer_error).to_contain_text("Slow down")
    expect(ann.pending).not_to_have_count(0)
    # Nothing goes back into the box: the outbox sends the refused ones again by itself.
    expect(ann.composer).to_have_value("")
    expect(bob.message(burst[-1])).to_have_count(1, timeout=BACK_MS)
    expect(ann.pending).to_have_count(0)
    expect(ann.composer_error).to_be_hidden()
    assert bob.message_texts() == burst
    assert ann.message_texts() == burst
