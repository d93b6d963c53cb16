"""
The conversation beyond sending, over the wire against real daphne, Redis
and DynamoDB Local: typing, reactions, replies, edits and deletes, each
seen by everyone in the room, refused in words when not allowed, and
replayed to a client that was away.
"""

import asyncio
import secrets

import pytest
import requests

from chat import protocol

from .support.clients import ChatClient
from .support.operators import new_user, servers_with_users

FAST = {"CHAT_RATE_LIMIT_PER_SECOND": "1000", "CHAT_RATE_LIMIT_BURST": "1000"}
TWENTY = [
    "👍",
    "❤️",
    "😂",
    "🎉",
    "😮",
    "😢",
    "🙏",
    "🔥",
    "👀",
    "✅",
    "🚀",
    "💯",
    "🤔",
    "👏",
    "🍪",
    "☕",
    "🌈",
    "⭐",
    "🐛",
    "🇫🇷",
]


@pytest.fixture(scope="module")
def users():
    return {
        "moderator": new_user("moderator", perms=["moderate_messages"]),
        "ada": new_user("ada", perms=[]),
    }


@pytest.fixture(scope="module")
def servers(server_env, users):
    """Two daphne processes sharing Redis, DynamoDB Local and a database with a moderator in it."""
    names = ("daphne-a", "daphne-b")
    with servers_with_users(server_env, list(users.values()), names, CHAT_HEARTBEAT_INTERVAL="2", **FAST) as servers:
        yield servers


def of_type(kind: str, **fields):
    return lambda f: f["type"] == kind and all(f.get(k) == v for k, v in fields.items())


async def join(server, room, name, **options) -> ChatClient:
    return await ChatClient.join(server.ws_url, room, name, client_id=secrets.token_urlsafe(16), **options)


async def say(client: ChatClient, text: str, **fields) -> dict:
    """Send a message and wait for its echo: the frame as the room got it."""
    await client.send({"action": "sendMessage", "message": text, **fields})
    return await client.receive_until(of_type(protocol.MESSAGE, message=text.strip()))


async def refused(client: ChatClient, frame: dict) -> str:
    await client.send(frame)
    return (await client.receive_until(of_type(protocol.ERROR)))["code"]


async def test_typing_reaches_the_others_once_per_two_seconds_and_never_the_typist(servers, room):
    ann, bob = await join(servers[0], room, "Ann"), await join(servers[1], room, "Bob")
    for _ in range(3):
        await ann.send({"action": "typing"})
    typing = await bob.receive_until(of_type(protocol.TYPING_FRAME))
    assert typing["connectionId"] == ann.connection_id and typing["name"] == "Ann"
    assert typing["room"] == room and typing["sender"] == ann.welcome["sender"]
    await ann.send({"action": "sendMessage", "message": "done typing"})
    later = await bob.receive_until(of_type(protocol.MESSAGE))
    assert later["message"] == "done typing"
    assert [f for f in await bob.nothing_more(0.3) if f["type"] == protocol.TYPING_FRAME] == []
    assert [f for f in await ann.nothing_more(0.3) if f["type"] == protocol.TYPING_FRAME] == []
    await asyncio.gather(ann.close(), bob.close())


async def test_a_room_over_the_presence_limit_gets_no_typing(start_server, room):
    server = start_server(CHAT_PRESENCE_LIMIT="1")
    ann, bob = await join(server, room, "Ann"), await join(server, room, "Bob")
    await ann.send({"action": "typing"})
    await ann.send({"action": "sendMessage", "message": "after typing"})
    frames = [await bob.receive_until(of_type(protocol.MESSAGE)), *await bob.nothing_more(0.3)]
    assert [f["type"] for f in frames if f["type"] == protocol.TYPING_FRAME] == []
    await asyncio.gather(ann.close(), bob.close())


async def test_a_reaction_toggles_and_everyone_sees_the_counts(servers, room):
    ann, bob = await join(servers[0], room, "Ann"), await join(servers[1], room, "Bob")
    message = await say(ann, "lunch?")
    react = {"action": "react", "messageId": message["id"], "emoji": "👍"}
    await bob.send(react)
    for client in (ann, bob):
        frame = await client.receive_until(of_type(protocol.REACTION))
        assert frame["messageId"] == message["id"] and frame["reactions"] == {"👍": 1}
        assert frame["added"] is True and frame["sender"] == bob.welcome["sender"] and frame["seq"] > message["seq"]
    await ann.send(react)
    assert (await bob.receive_until(of_type(protocol.REACTION)))["reactions"] == {"👍": 2}
    await bob.send(react)  # Bob takes his back
    frame = await ann.receive_until(of_type(protocol.REACTION, added=False))
    assert frame["reactions"] == {"👍": 1}
    # A bare heart is the heart emoji; anything else than one emoji is refused.
    await bob.send({**react, "emoji": "❤"})
    assert (await ann.receive_until(of_type(protocol.REACTION, added=True)))["reactions"] == {"👍": 1, "❤️": 1}
    for emoji in ("x", "👍👍", "", ":+1:", 5, None):
        assert await refused(bob, {**react, "emoji": emoji}) == protocol.INVALID_REACTION
    assert await refused(bob, {**react, "messageId": "nope"}) == protocol.INVALID_MESSAGE
    assert await refused(bob, {**react, "messageId": protocol.new_message_id()}) == protocol.UNKNOWN_MESSAGE
    await asyncio.gather(ann.close(), bob.close())


async def test_one_person_may_put_twenty_distinct_reactions_on_a_message(servers, room):
    ann = await join(servers[0], room, "Ann")
    message = await say(ann, "react to me")
    for emoji in TWENTY:
        await ann.send({"action": "react", "messageId": message["id"], "emoji": emoji})
        await ann.receive_until(of_type(protocol.REACTION, emoji=emoji))
    assert await refused(ann, {"action": "react", "messageId": message["id"], "emoji": "🦀"}) == (
        protocol.TOO_MANY_REACTIONS
    )
    bob = await join(servers[1], room, "Bob")
    (shown,) = [m for m in bob.welcome["history"] if m["id"] == message["id"]]
    assert shown["reactions"] == dict.fromkeys(TWENTY, 1)
    await asyncio.gather(ann.close(), bob.close())


async def test_the_sender_edits_within_the_window_and_no_one_else_may(servers, room):
    ann, bob = await join(servers[0], room, "Ann"), await join(servers[1], room, "Bob")
    message = await say(ann, "teh plan")
    await ann.send({"action": "editMessage", "messageId": message["id"], "message": "  the plan  "})
    for client in (ann, bob):
        frame = await client.receive_until(of_type(protocol.MESSAGE_EDITED))
        assert frame["messageId"] == message["id"] and frame["message"] == "the plan"
        assert frame["editedAt"] >= message["sentAt"] and frame["seq"] > message["seq"]
    edit = {"action": "editMessage", "messageId": message["id"], "message": "mine now"}
    assert await refused(bob, edit) == protocol.NOT_ALLOWED
    assert await refused(ann, {**edit, "message": "   "}) == protocol.INVALID_MESSAGE
    carol = await join(servers[0], room, "Carol")
    (shown,) = [m for m in carol.welcome["history"] if m["id"] == message["id"]]
    assert shown["message"] == "the plan" and shown["editedAt"]
    await asyncio.gather(ann.close(), bob.close(), carol.close())


async def test_an_edit_past_the_window_is_refused(start_server, room):
    server = start_server(CHAT_EDIT_WINDOW="0")
    ann = await join(server, room, "Ann")
    message = await say(ann, "too late to fix")
    assert await refused(ann, {"action": "editMessage", "messageId": message["id"], "message": "x"}) == (
        protocol.EDIT_WINDOW_PASSED
    )
    await ann.close()


async def test_a_delete_by_the_sender_or_an_operator_leaves_a_tombstone(servers, room, users):
    ann, bob = await join(servers[0], room, "Ann"), await join(servers[1], room, "Bob")
    assert ann.welcome["operator"] is False
    first = await say(ann, "oops, wrong room")
    second = await say(bob, "something rude")
    assert await refused(bob, {"action": "deleteMessage", "messageId": first["id"]}) == protocol.NOT_ALLOWED
    await ann.send({"action": "deleteMessage", "messageId": first["id"]})
    for client in (ann, bob):
        frame = await client.receive_until(of_type(protocol.MESSAGE_DELETED))
        assert frame["messageId"] == first["id"] and frame["seq"] > second["seq"]
    await ann.send({"action": "deleteMessage", "messageId": first["id"]})  # again: nothing changes
    assert [f for f in await bob.nothing_more(0.3) if f["type"] == protocol.MESSAGE_DELETED] == []
    assert await refused(ann, {"action": "react", "messageId": first["id"], "emoji": "👍"}) == (
        protocol.UNKNOWN_MESSAGE
    )
    cookie = {"Cookie": f"sessionid={users['moderator'].session_key}"}
    moderator = await join(servers[1], room, None, additional_headers=cookie)
    assert moderator.welcome["operator"] is True and moderator.name == "moderator"
    await moderator.send({"action": "deleteMessage", "messageId": second["id"]})
    assert (await bob.receive_until(of_type(protocol.MESSAGE_DELETED)))["messageId"] == second["id"]
    plain = await join(servers[0], room, None, additional_headers={"Cookie": f"sessionid={users['ada'].session_key}"})
    assert plain.welcome["operator"] is False
    carol = await join(servers[0], room, "Carol")
    history = {m["id"]: m for m in carol.welcome["history"]}
    for gone in (first, second):
        assert history[gone["id"]]["deleted"] is True
        assert "message" not in history[gone["id"]] and "reactions" not in history[gone["id"]]
    await asyncio.gather(*(c.close() for c in (ann, bob, moderator, plain, carol)))


async def test_a_reply_quotes_a_message_of_the_same_room(servers, room):
    ann, bob = await join(servers[0], room, "Ann"), await join(servers[1], room, "Bob")
    long_text = "Where shall we meet? " * 10
    original = await say(ann, long_text)
    reply = await say(bob, "At the station", replyTo=original["id"])
    assert reply["replyTo"] == {"id": original["id"], "name": "Ann", "excerpt": long_text.strip()[:140]}
    seen_by_ann = await ann.receive_until(of_type(protocol.MESSAGE, id=reply["id"]))
    assert seen_by_ann["replyTo"] == reply["replyTo"]
    elsewhere = await join(servers[0], room + "-x", "Zed")
    foreign = await say(elsewhere, "another room")
    send = {"action": "sendMessage", "message": "hm"}
    assert await refused(bob, {**send, "replyTo": foreign["id"]}) == protocol.INVALID_MESSAGE
    assert await refused(bob, {**send, "replyTo": "not-an-id"}) == protocol.INVALID_MESSAGE
    await ann.send({"action": "deleteMessage", "messageId": original["id"]})
    await bob.receive_until(of_type(protocol.MESSAGE_DELETED))
    late = await say(bob, "too late?", replyTo=original["id"])
    assert late["replyTo"] == {"id": original["id"], "name": "Ann", "excerpt": None}
    carol = await join(servers[1], room, "Carol")
    history = {m["id"]: m for m in carol.welcome["history"]}
    assert history[reply["id"]]["replyTo"]["excerpt"] is None  # brought up to date: the original is gone
    await asyncio.gather(*(c.close() for c in (ann, bob, elsewhere, carol)))


def current_state(messages: dict[str, dict], frames: list[dict]) -> dict[str, dict]:
    """What a client holds after applying frames in order, as the protocol says: by version, tombstones final."""
    state = {k: dict(v) for k, v in messages.items()}
    for frame in frames:
        if frame["type"] == protocol.MESSAGE:
            state[frame["id"]] = dict(frame)
            continue
        held = state.get(frame.get("messageId"))
        if held is None or held.get("deleted") or frame["version"] <= held["version"]:
            continue
        if frame["type"] == protocol.MESSAGE_EDITED:
            held.update(message=frame["message"], editedAt=frame["editedAt"])
        elif frame["type"] == protocol.REACTION:
            held["reactions"] = frame["reactions"]
        elif frame["type"] == protocol.MESSAGE_DELETED:
            held = {"deleted": True}
            state[frame["messageId"]] = held
        held["version"] = frame["version"]
    return state


def visible(state: dict[str, dict]) -> dict[str, tuple]:
    return {
        k: ("deleted",) if v.get("deleted") else (v["message"], bool(v.get("editedAt")), v["reactions"])
        for k, v in state.items()
    }


async def test_a_client_away_during_an_edit_a_reaction_and_a_delete_sees_them_after_recovering(servers, room):
    ann, bob = await join(servers[0], room, "Ann"), await join(servers[1], room, "Bob")
    one, two, three = [await say(ann, text) for text in ("one", "two", "three")]
    carol = await join(servers[1], room, "Carol")
    held = {m["id"]: m for m in carol.welcome["history"]}
    last_seq = max(m["seq"] for m in carol.welcome["history"])
    await carol.close()

    await ann.send({"action": "editMessage", "messageId": one["id"], "message": "one, edited"})
    await ann.receive_until(of_type(protocol.MESSAGE_EDITED))
    await bob.send({"action": "react", "messageId": two["id"], "emoji": "🎉"})
    await ann.receive_until(of_type(protocol.REACTION))
    await ann.send({"action": "deleteMessage", "messageId": three["id"]})
    await ann.receive_until(of_type(protocol.MESSAGE_DELETED))

    back = await ChatClient.join(servers[0].ws_url, room, "Carol", since=str(last_seq))
    replayed = back.welcome["history"]
    assert [f["type"] for f in replayed] == [protocol.MESSAGE_EDITED, protocol.REACTION, protocol.MESSAGE_DELETED]
    assert [f["seq"] for f in replayed] == sorted(f["seq"] for f in replayed)
    expected = {
        one["id"]: ("one, edited", True, {}),
        two["id"]: ("two", False, {"🎉": 1}),
        three["id"]: ("deleted",),
    }
    assert visible(current_state(held, replayed)) == expected
    # The same through the history action, and for someone new: messages in their current state.
    await back.send({"action": "history", "after": last_seq})
    page = await back.receive_until(of_type(protocol.HISTORY))
    assert page["messages"] == replayed
    newcomer = await join(servers[1], room, "Dan")
    assert visible({m["id"]: m for m in newcomer.welcome["history"]}) == expected
    await back.send({"action": "history", "before": three["seq"] + 1})
    older = await back.receive_until(of_type(protocol.HISTORY))
    assert visible({m["id"]: m for m in older["messages"]}) == expected
    await asyncio.gather(*(c.close() for c in (ann, bob, back, newcomer)))


async def test_changes_made_through_one_process_reach_members_on_the_other(servers, room):
    ann = await join(servers[0], room, "Ann")
    bob = await join(servers[1], room, "Bob")
    message = await say(ann, "across processes")
    await ann.send({"action": "react", "messageId": message["id"], "emoji": "🚀"})
    await ann.send({"action": "editMessage", "messageId": message["id"], "message": "across processes!"})
    reaction = await bob.receive_until(of_type(protocol.REACTION))
    edited = await bob.receive_until(of_type(protocol.MESSAGE_EDITED))
    assert reaction["reactions"] == {"🚀": 1} and edited["message"] == "across processes!"
    assert message["seq"] < reaction["seq"] < edited["seq"] and reaction["version"] < edited["version"]
    # Bob's process keeps the room's recent messages current: a newcomer there sees both changes.
    carol = await join(servers[1], room, "Carol")
    (shown,) = [m for m in carol.welcome["history"] if m["id"] == message["id"]]
    assert shown["message"] == "across processes!" and shown["reactions"] == {"🚀": 1}
    assert shown["version"] == edited["version"]
    await asyncio.gather(ann.close(), bob.close(), carol.close())


def directory(server, **query) -> dict[str, int]:
    response = requests.get(f"{server.url}/rooms/", params={"format": "json", **query}, timeout=10)
    response.raise_for_status()
    return {entry["room"]: entry["count"] for entry in response.json()["rooms"]}


async def test_the_room_directory_lists_rooms_with_people_on_every_process(servers, room):
    here = [await join(servers[0], room, name) for name in ("Ann", "Bob")]
    there = await join(servers[1], room + "-b", "Carol")
    listed = await until_listed(servers[0], {room: 2, room + "-b": 1})
    assert listed[room] == 2 and listed[room + "-b"] == 1
    assert set(directory(servers[0], q=room + "-B")) == {room + "-b"}  # search ignores case
    page = requests.get(f"{servers[0].url}/rooms/", params={"q": room}, timeout=10)
    assert page.status_code == 200 and f"/chat/{room}/" in page.text and "room-count" in page.text
    await asyncio.gather(*(c.close() for c in (*here, there)))
    listed = await until_listed(servers[0], {room: 0, room + "-b": 0})
    assert room not in listed and room + "-b" not in listed  # empty rooms leave the directory


async def until_listed(server, counts: dict[str, int], timeout: float = 20) -> dict[str, int]:
    """The directory, once it shows these counts (0: not listed); a heartbeat and the cache take seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = await asyncio.to_thread(directory, server)
        if all(seen.get(room, 0) == count for room, count in counts.items()):
            return seen
        if loop.time() > deadline:
            raise AssertionError(f"the directory shows {seen}, not {counts}, after {timeout} s")
        await asyncio.sleep(0.25)  # polling interval: the condition is the directory's answer above
