"""History and recovery: what was said before you came, and nothing lost across a reconnect."""

import asyncio
import time

from chat import protocol

from .support.clients import ChatClient


def is_message(frame) -> bool:
    return frame["type"] == protocol.MESSAGE


async def say_and_see(client: ChatClient, texts: list[str]) -> list[dict]:
    """Send messages one by one, each seen back before the next: their frames, in order."""
    frames = []
    for text in texts:
        await client.say(text)
        frames.append(await client.receive_until(lambda f, t=text: is_message(f) and f["message"] == t))
    return frames


async def test_the_welcome_carries_the_latest_messages_oldest_first(server, room, dynamodb_local):
    ann = await ChatClient.join(server.ws_url, room, "Ann")
    sent = await say_and_see(ann, ["one", "two", "three"])
    bob = await ChatClient.join(server.ws_url, room, "Bob")
    assert bob.welcome["history"] == sent
    item = dynamodb_local.client().get_item(
        TableName="ChatMessages", Key={"room": {"S": room}, "seq": {"N": str(sent[0]["seq"])}}
    )["Item"]
    assert item["message"]["S"] == "one"
    retention = int(item["expiresAt"]["N"]) - time.time()
    assert 6 * 24 * 3600 < retention <= 7 * 24 * 3600
    await asyncio.gather(ann.close(), bob.close())


async def test_older_history_comes_page_by_page(start_server, room):
    server = start_server(CHAT_HISTORY_LIMIT="5")
    ann = await ChatClient.join(server.ws_url, room, "Ann")
    sent = await say_and_see(ann, [f"m{i}" for i in range(12)])
    bob = await ChatClient.join(server.ws_url, room, "Bob")
    assert bob.welcome["history"] == sent[-5:]
    pages, before = [], bob.welcome["history"][0]["id"]
    for _ in range(5):
        await bob.send({"action": "history", "before": before})
        page = await bob.receive_until(lambda f: f["type"] == protocol.HISTORY)
        pages.append(page)
        if not page["more"]:
            break
        before = page["messages"][0]["id"]
    assert [p["messages"] for p in pages] == [sent[2:7], sent[:2]]
    assert [p["more"] for p in pages] == [True, False]
    await bob.send({"action": "history", "before": "not-an-id"})
    error = await bob.receive_until(lambda f: f["type"] == protocol.ERROR)
    assert error["code"] == protocol.INVALID_CURSOR
    await asyncio.gather(ann.close(), bob.close())


async def test_a_client_reconnecting_with_since_misses_nothing_and_sees_nothing_twice(start_server, room):
    """Messages keep coming while the client is away and while it reconnects."""
    server = start_server(CHAT_RATE_LIMIT_PER_SECOND="1000", CHAT_RATE_LIMIT_BURST="1000")
    sender = await ChatClient.join(server.ws_url, room, "Sender")
    reader = await ChatClient.join(server.ws_url, room, "Reader")
    total = 150
    seen: list[dict] = []

    async def send_all() -> None:
        for i in range(total):
            await sender.say(f"n{i}")
            if i % 10 == 9:  # let the reader's reconnect interleave with the stream
                await sender.receive_until(lambda f, t=f"n{i}": is_message(f) and f["message"] == t)

    sending = asyncio.create_task(send_all())
    for _ in range(3):  # drop and come back three times while messages flow
        seen += [await reader.receive_until(is_message) for _ in range(20)]
        await reader.close()
        reader = await ChatClient.join(server.ws_url, room, "Reader", since=seen[-1]["id"])
        seen += reader.welcome["history"]
    await sending
    while len(seen) < total:
        seen.append(await reader.receive_until(is_message))
    assert [f["message"] for f in seen] == [f"n{i}" for i in range(total)]
    assert await reader.nothing_more(0.3) == []
    await asyncio.gather(sender.close(), reader.close())


async def test_a_client_away_for_longer_than_the_recovery_limit_gets_the_latest_without_a_gap(start_server, room):
    server = start_server(CHAT_RECOVERY_LIMIT="4")
    ann = await ChatClient.join(server.ws_url, room, "Ann")
    sent = await say_and_see(ann, [f"m{i}" for i in range(10)])
    bob = await ChatClient.join(server.ws_url, room, "Bob", since=sent[0]["id"])
    assert bob.welcome["history"] == sent[-4:]
    await ann.say("live")
    assert (await bob.receive_until(is_message))["message"] == "live"
    await asyncio.gather(ann.close(), bob.close())


async def test_recovery_from_the_oldest_id_in_a_room_of_long_messages_fits_the_byte_bound(start_server, room):
    server = start_server(CHAT_RATE_LIMIT_PER_SECOND="1000", CHAT_RATE_LIMIT_BURST="1000")
    ann = await ChatClient.join(server.ws_url, room, "Ann", max_size=None)
    texts = [f"{i:03d} " + "x" * 3990 for i in range(300)]  # about 1.2 MB in all
    for text in texts:
        await ann.say(text)
    await ann.receive_until(lambda f: is_message(f) and f["message"] == texts[-1], 30)

    bob = await ChatClient.join(server.ws_url, room, "Bob", since="0" * 26, max_size=None)
    size = len(protocol.encode(bob.welcome))
    history = [m["message"] for m in bob.welcome["history"]]
    assert bob.welcome["truncated"] is True and size < 256 * 1024 + 4096, size
    assert history == texts[-len(history) :] and 40 < len(history) < 70  # the latest that fit, in order

    # The page before the oldest one shown is bounded the same way, and says more are left.
    await bob.send({"action": "history", "before": bob.welcome["history"][0]["id"]})
    page = await bob.receive_until(lambda f: f["type"] == protocol.HISTORY)
    assert [m["message"] for m in page["messages"]] == texts[-len(history) - len(page["messages"]) : -len(history)]
    assert page["more"] is True and len(protocol.encode(page)) < 256 * 1024 + 4096
    await asyncio.gather(ann.close(), bob.close())
