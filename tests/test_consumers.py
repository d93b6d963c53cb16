"""The consumer in-process (Channels' WebsocketCommunicator), against real Redis and DynamoDB Local."""

import asyncio

import pytest
from channels.testing import WebsocketCommunicator

from chat import protocol
from chat.stores import get_connection_store
from chatsite.asgi import application

# Guests' names are checked against registered users.
pytestmark = pytest.mark.django_db(transaction=True)


async def join(room: str, name: str | None = None) -> tuple[WebsocketCommunicator, dict]:
    path = f"/ws/chat/{room}/" + (f"?name={name}" if name else "")
    communicator = WebsocketCommunicator(application, path, headers=[(b"user-agent", b"pytest-communicator")])
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    welcome = await communicator.receive_json_from(timeout=10)
    assert welcome["type"] == protocol.WELCOME
    return communicator, welcome


async def next_of(communicator: WebsocketCommunicator, frame_type: str) -> dict:
    """The next frame of a type; no error frame may come first."""
    for _ in range(50):
        frame = await communicator.receive_json_from(timeout=10)
        if frame["type"] == frame_type:
            return frame
        assert frame["type"] != protocol.ERROR, frame
    raise AssertionError(f"no {frame_type} frame among the next 50")


async def test_welcome_names_the_connection_and_lists_the_room(room):
    ann, ann_welcome = await join(room, "Ann")
    bob, bob_welcome = await join(room, "Bob")
    assert bob_welcome["room"] == room and bob_welcome["name"] == "Bob"
    assert {m["name"] for m in bob_welcome["members"]} == {"Ann", "Bob"}
    assert {"connectionId": ann_welcome["connectionId"], "name": "Ann"} in bob_welcome["members"]
    await ann.disconnect()
    await bob.disconnect()


async def test_a_message_reaches_every_member_of_the_room_and_no_other_room(room):
    ann, _ = await join(room, "Ann")
    bob, _ = await join(room, "Bob")
    eve, _ = await join(room + "-elsewhere", "Eve")
    await next_of(ann, protocol.PRESENCE)  # Bob joined
    await ann.send_json_to({"action": "sendMessage", "message": "hello"})
    for member in (ann, bob):
        frame = await next_of(member, protocol.MESSAGE)
        assert frame["message"] == "hello" and frame["name"] == "Ann" and frame["room"] == room
    assert await eve.receive_nothing(timeout=0.3)
    for communicator in (ann, bob, eve):
        await communicator.disconnect()


async def test_the_connection_is_registered_while_open_and_forgotten_after(room):
    ann, welcome = await join(room, "Ann")
    store = get_connection_store()
    recorded = await store.get(welcome["connectionId"])
    assert recorded.room == room and recorded.name == "Ann" and recorded.user_agent == "pytest-communicator"
    await ann.disconnect()
    assert await store.get(welcome["connectionId"]) is None


@pytest.mark.parametrize("room_name", ["bad%20room", "x" * 65, "dots.here"])
async def test_a_bad_room_name_is_refused_at_the_handshake(room_name):
    communicator = WebsocketCommunicator(application, f"/ws/chat/{room_name}/")
    connected, _ = await communicator.connect(timeout=10)
    assert not connected


async def test_the_bare_endpoint_is_the_lobby():
    communicator = WebsocketCommunicator(application, "/ws/chat/")
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    welcome = await communicator.receive_json_from(timeout=10)
    assert welcome["room"] == protocol.DEFAULT_ROOM and welcome["name"].startswith("guest-")
    await communicator.disconnect()


async def test_a_bad_frame_is_answered_to_its_sender_only(room):
    ann, _ = await join(room, "Ann")
    bob, _ = await join(room, "Bob")
    await next_of(ann, protocol.PRESENCE)
    await ann.send_to(text_data="{oops")
    error = await ann.receive_json_from(timeout=10)
    assert error == {"type": "error", "code": protocol.BAD_JSON, "message": error["message"]}
    await bob.send_json_to({"action": "sendMessage", "message": "after"})
    frame = await next_of(bob, protocol.MESSAGE)  # everything Bob got before his own message
    assert frame["message"] == "after"
    await asyncio.gather(ann.disconnect(), bob.disconnect())
