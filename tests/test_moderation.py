"""
Moderation across server processes: operators act through one process
(the ``@messages``, ``@rooms`` and ``@bans`` API), the people they act on
are on the other, and every process enforces it at once; each action is
refused without its permission, and mutes and bans end when they expire.
"""

import asyncio
import json
import secrets
import uuid

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat import protocol
from chat.moderation.rules import ModerationCache
from chat.stores import get_moderation_store
from chat.stores.dynamodb import DynamoDBModerationStore

from .support.clients import ChatClient, chat_path
from .support.operators import new_user, servers_with_users, session_of

TOKEN = f"token-{uuid.uuid4().hex}"
MODERATION = ["moderate_messages", "moderate_people", "moderate_rooms", "view_moderatedroom"]


@pytest.fixture(scope="module")
def users():
    return {"moderator": new_user("moderator", perms=MODERATION), "watcher": new_user("watcher", perms=[])}


@pytest.fixture(scope="module")
def servers(server_env, users):
    with servers_with_users(
        server_env, list(users.values()), ("daphne-a", "daphne-b"), CHAT_MANAGEMENT_TOKEN=TOKEN
    ) as servers:
        yield servers


def call(server, method: str, path: str, *, session: requests.Session | None = None, **kwargs) -> requests.Response:
    """A management request to ``server``: with a staff session when given, else with the token."""
    if session is None:
        kwargs.setdefault("headers", {}).setdefault("Authorization", f"Bearer {TOKEN}")
    return (session or requests).request(method, server.url + path, timeout=10, **kwargs)


def of_type(kind: str, **fields):
    return lambda f: f["type"] == kind and all(f.get(k) == v for k, v in fields.items())


async def join(server, room, name, client_id=None) -> ChatClient:
    return await ChatClient.join(server.ws_url, room, name, client_id=client_id or secrets.token_urlsafe(16))


async def send(client: ChatClient, text: str) -> dict:
    """Send and return what answers it: the message's echo, or the error refusing it."""
    await client.send({"action": "sendMessage", "message": text})
    return await client.receive_until(
        lambda f: f["type"] == protocol.ERROR or (f["type"] == protocol.MESSAGE and f["message"] == text)
    )


async def until_sent(client: ChatClient, text: str, *, timeout: float = 15) -> dict:
    """Send until the message goes (a refusal is retried), bounded in time: its echo."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for attempt in range(100):
        answer = await send(client, f"{text} {attempt}")
        if answer["type"] == protocol.MESSAGE:
            return answer
        if loop.time() > deadline:
            raise AssertionError(f"still refused after {timeout} s: {answer}")
        await asyncio.sleep(0.25)  # polling interval: the condition is the server's answer above
    raise AssertionError("still refused after 100 tries")


async def connect_answer(server, room, name, client_id) -> tuple[dict, ChatClient | None]:
    """Connect: the first frame, and the client when it was welcomed."""
    path = chat_path(room, name=name, clientId=client_id)
    ws = await asyncio.wait_for(connect(server.ws_url + path), 10)
    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    if first["type"] == protocol.WELCOME:
        return first, ChatClient(ws, first)
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd.code == protocol.CLOSE_BY_OPERATOR
    return first, None


async def refused_at_connect(server, room, name, client_id=None) -> str:
    """Connect and expect to be turned away: the system frame's words (the close is 4003)."""
    frame, client = await connect_answer(server, room, name, client_id or secrets.token_urlsafe(16))
    assert client is None and frame["type"] == protocol.SYSTEM, frame
    return frame["message"]


async def test_an_operator_deletes_any_message_for_everyone(servers, room, users):
    a, b = servers
    ann, bob = await join(b, room, "Ann"), await join(a, room, "Bob")
    message = (await send(ann, "something rude")) or {}
    path = f"/@messages/{room}/{message['id']}"
    assert call(a, "DELETE", path, session=session_of(users["watcher"])).status_code == 403
    assert call(a, "DELETE", path, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert requests.delete(a.url + path, timeout=10).status_code == 401
    assert call(a, "DELETE", path, session=session_of(users["moderator"])).status_code == 204
    for client in (ann, bob):
        frame = await client.receive_until(of_type(protocol.MESSAGE_DELETED))
        assert frame["messageId"] == message["id"]
    assert call(a, "DELETE", f"/@messages/{room}/{protocol.new_message_id()}").status_code == 404
    carol = await join(b, room, "Carol")
    (tombstone,) = [m for m in carol.welcome["history"] if m["id"] == message["id"]]
    assert tombstone["deleted"] is True and "message" not in tombstone
    await asyncio.gather(ann.close(), bob.close(), carol.close())


async def test_a_muted_person_is_refused_in_that_room_until_the_mute_ends(servers, room, users):
    a, b = servers
    identity = secrets.token_urlsafe(16)
    ann, bob = await join(b, room, "Ann", identity), await join(b, room, "Bob")
    elsewhere = await join(b, room + "-x", "Ann")
    mutes = f"/@rooms/{room}/mutes"
    body = {"name": "ann", "seconds": 60}
    assert call(a, "POST", mutes, json=body, session=session_of(users["watcher"])).status_code == 403
    answer = call(a, "POST", mutes, json=body, session=session_of(users["moderator"]))
    assert answer.status_code == 201 and answer.json()["until"]
    refusal = await send(ann, "can I still talk?")
    assert refusal["code"] == protocol.MUTED and "until" in refusal["message"]
    # Muted by who they are, not only by name: a new name does not lift it.
    renamed = await join(b, room, "Annie", identity)
    assert (await send(renamed, "it is me again"))["code"] == protocol.MUTED
    assert (await send(bob, "I can"))["type"] == protocol.MESSAGE
    assert (await send(elsewhere, "another room"))["type"] == protocol.MESSAGE
    state = call(a, "GET", f"/@rooms/{room}").json()
    assert [m["name"] for m in state["mutes"]] == ["ann"]
    assert call(a, "DELETE", f"{mutes}/ANN").status_code == 204  # names compare case-folded
    assert call(a, "DELETE", f"{mutes}/ann").status_code == 404
    assert (await send(ann, "back"))["type"] == protocol.MESSAGE
    assert call(a, "POST", mutes, json={"name": "Ann", "seconds": 1}).status_code == 201
    assert (await send(ann, "again?"))["code"] == protocol.MUTED
    await until_sent(ann, "the mute has ended")
    for bad in ({"name": "Ann"}, {"name": "", "seconds": 5}, {"name": "Ann", "seconds": 0}, [1]):
        assert call(a, "POST", mutes, json=bad).status_code == 400
    await asyncio.gather(*(c.close() for c in (ann, bob, elsewhere, renamed)))


async def test_a_banned_person_is_closed_everywhere_and_refused_until_it_ends(servers, room, users):
    a, b = servers
    identity = secrets.token_urlsafe(16)
    ann = await join(b, room, "Mallory", identity)
    other_room = await join(a, room + "-y", "Mallory", identity)
    bob = await join(b, room, "Bob")
    assert (
        call(
            a, "POST", "/@bans", json={"name": "Mallory", "seconds": 60}, session=session_of(users["watcher"])
        ).status_code
        == 403
    )
    answer = call(a, "POST", "/@bans", json={"name": "Mallory", "seconds": 60}, session=session_of(users["moderator"]))
    assert answer.status_code == 201 and answer.json()["closed"] == 2
    for client in (ann, other_room):
        notice = await client.receive_until(of_type(protocol.SYSTEM))
        assert "banned" in notice["message"]
        with pytest.raises(ConnectionClosed) as closed:
            await client.receive(5)
        assert closed.value.rcvd.code == protocol.CLOSE_BY_OPERATOR
    assert "banned" in await refused_at_connect(a, room, "Mallory")
    assert "banned" in await refused_at_connect(b, room, "Someone Else", identity)
    assert (await send(bob, "still here"))["type"] == protocol.MESSAGE
    assert call(a, "DELETE", "/@bans/Mallory").status_code == 204
    back = await join(b, room, "Mallory", identity)  # lifted: every process reads it again at once
    assert call(a, "POST", "/@bans", json={"name": "Mallory", "seconds": 1}).status_code == 201
    await back.receive_until(of_type(protocol.SYSTEM))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:  # the ban ends by itself
        _, client = await connect_answer(a, room, "Mallory", identity)
        if client is not None:
            break
        assert loop.time() < deadline, "the ban did not end"
        await asyncio.sleep(0.25)  # polling interval: the condition is whether the connect is turned away
    await asyncio.gather(bob.close(), client.close())


async def test_slow_mode_and_a_lock_apply_to_everyone_in_the_room(servers, room, users):
    a, b = servers
    ann = await join(b, room, "Ann")
    path = f"/@rooms/{room}"
    assert call(a, "PUT", path, json={"locked": True}, session=session_of(users["watcher"])).status_code == 403
    state = call(a, "PUT", path, json={"slowModeSeconds": 30}, session=session_of(users["moderator"]))
    assert state.status_code == 200 and state.json()["slowModeSeconds"] == 30
    assert (await send(ann, "first"))["type"] == protocol.MESSAGE
    refusal = await send(ann, "second")
    assert refusal["code"] == protocol.SLOW_MODE and "30" in refusal["message"]
    # Another connection of the same browser, on the other process, shares the turn.
    assert call(a, "PUT", path, json={"slowModeSeconds": 0, "locked": True}).json()["locked"] is True
    refusal = await send(ann, "locked?")
    assert refusal["code"] == protocol.ROOM_LOCKED
    await ann.send({"action": "history", "before": 10**6})
    assert (await ann.receive_until(of_type(protocol.HISTORY)))["messages"][-1]["message"] == "first"
    assert call(a, "PUT", path, json={"locked": False}).status_code == 200
    assert (await send(ann, "open again"))["type"] == protocol.MESSAGE
    for bad in ({}, {"slowModeSeconds": -1}, {"locked": "yes"}):
        assert call(a, "PUT", path, json=bad).status_code == 400
    await ann.close()


async def test_a_resend_in_slow_mode_gets_its_original_back_rather_than_a_refusal(servers, room):
    a, b = servers
    identity = secrets.token_urlsafe(16)
    ann = await join(a, room, "Ann", identity)
    assert call(a, "PUT", f"/@rooms/{room}", json={"slowModeSeconds": 60}).status_code == 200
    await ann.send({"action": "sendMessage", "message": "once", "clientMessageId": "m-1"})
    first = await ann.receive_until(of_type(protocol.MESSAGE))
    await ann.close()
    back = await join(b, room, "Ann", identity)  # the page lost its socket before it knew: it sends again
    await back.send({"action": "sendMessage", "message": "once", "clientMessageId": "m-1"})
    answer = await back.receive_until(lambda f: f["type"] in (protocol.MESSAGE, protocol.ERROR))
    assert answer == first
    assert (await send(back, "a new one"))["code"] == protocol.SLOW_MODE
    await back.close()


async def test_slow_mode_counts_one_person_across_processes(servers, room):
    a, b = servers
    identity = secrets.token_urlsafe(16)
    here, there = await join(a, room, "Ann", identity), await join(b, room, "Ann", identity)
    assert call(a, "PUT", f"/@rooms/{room}", json={"slowModeSeconds": 60}).status_code == 200
    assert (await send(here, "one"))["type"] == protocol.MESSAGE
    assert (await send(there, "two"))["code"] == protocol.SLOW_MODE
    await asyncio.gather(here.close(), there.close())


def dynamodb_calls(server, operation: str) -> float:
    """How many DynamoDB calls of ``operation`` the process has made (its ``/metrics``, read from loopback)."""
    text = requests.get(server.url + "/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "chat_dynamodb_seconds_count" and sample.labels.get("operation") == operation
    )


async def test_a_crowd_connecting_after_the_bans_changed_reads_them_once(servers, room):
    a, _ = servers
    # A ban makes every process read the bans afresh at its next connect; a crowd arriving then shares one read.
    assert call(a, "POST", "/@bans", json={"name": f"Nobody {uuid.uuid4().hex[:8]}", "seconds": 60}).status_code == 201
    before = dynamodb_calls(a, "GetItem")
    # Unbounded queues: each reads on through the others' leaves to the server's answer to its close.
    crowd = await asyncio.gather(
        *(
            ChatClient.join(a.ws_url, room, f"Guest {index}", client_id=secrets.token_urlsafe(16), max_queue=None)
            for index in range(40)
        )
    )
    reads = dynamodb_calls(a, "GetItem") - before
    await asyncio.gather(*(client.close() for client in crowd))
    # One read, or two when the change event reached the process while the first was on its way.
    assert reads <= 2, f"40 connects made {reads:.0f} GetItems"


def calls_made_here(operation: str) -> float:
    """DynamoDB calls of ``operation`` this process has made (``chat_dynamodb_seconds``)."""
    return REGISTRY.get_sample_value("chat_dynamodb_seconds_count", {"operation": operation}) or 0.0


async def test_callers_that_come_while_the_bans_are_read_share_that_read_and_a_change_reads_afresh(chat_settings):
    assert isinstance(get_moderation_store(), DynamoDBModerationStore)
    cache = ModerationCache()
    before = calls_made_here("GetItem")
    seen = await asyncio.gather(*(cache.bans() for _ in range(40)))
    assert calls_made_here("GetItem") - before == 1
    assert all(bans == seen[0] for bans in seen)
    await cache.bans()  # fresh: no read
    cache.changed({"room": None, "bans": True})
    await asyncio.gather(*(cache.bans() for _ in range(40)))
    assert calls_made_here("GetItem") - before == 2
