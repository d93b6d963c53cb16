"""Limits on what one client may send, and on how long a socket stays: others never pay for it."""

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed

from chat import protocol

from .support.clients import WAIT, ChatClient


async def closed_with(client: ChatClient) -> tuple[dict, int]:
    """The error frame that explains a close, and the close code (frames before it are passed over)."""
    notice = await client.receive_until(lambda f: f["type"] == protocol.ERROR and f["code"] != protocol.RATE_LIMITED)
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(1000):
            await client.receive(WAIT)
    return notice, closed.value.rcvd.code


async def test_a_frame_over_the_size_limit_gets_an_error_and_the_socket_stays(server, room):
    ann = await ChatClient.join(server.ws_url, room, "Ann")
    await ann.send(json.dumps({"action": "sendMessage", "message": "x" * (32 * 1024)}))
    error = await ann.receive()
    assert error["type"] == protocol.ERROR and error["code"] == protocol.FRAME_TOO_LARGE
    await ann.say("small")
    assert (await ann.receive_until(lambda f: f["type"] == protocol.MESSAGE))["message"] == "small"
    await ann.close()


async def test_excess_frames_are_refused_while_others_chat_on(server, room):
    flood = await ChatClient.join(server.ws_url, room + "-flood", "Flood")
    ann = await ChatClient.join(server.ws_url, room, "Ann")
    for i in range(40):
        await flood.say(f"f{i}")
    replies = [await flood.receive_until(lambda f: f["type"] in {protocol.MESSAGE, protocol.ERROR}) for _ in range(40)]
    refused = [r for r in replies if r["type"] == protocol.ERROR]
    assert refused and all(r["code"] == protocol.RATE_LIMITED for r in refused)
    assert len(replies) - len(refused) >= 20  # a burst of 20 goes through
    for text in ("one", "two", "three"):
        await ann.say(text)
        assert (await ann.receive_until(lambda f: f["type"] == protocol.MESSAGE))["message"] == text
    await asyncio.gather(flood.close(), ann.close())


async def test_a_client_that_keeps_flooding_is_disconnected_with_a_reason(start_server, room):
    server = start_server(CHAT_FLOOD_LIMIT="30")
    flood = await ChatClient.join(server.ws_url, room, "Flood")
    try:
        for i in range(200):
            await flood.send({"action": "sendMessage", "message": f"f{i}"})
    except ConnectionClosed:
        pass
    notice, code = await closed_with(flood)
    assert notice["code"] == protocol.FLOODING and code == protocol.CLOSE_POLICY


async def test_an_idle_socket_is_closed_and_told_why(start_server, room):
    server = start_server(CHAT_IDLE_TIMEOUT="1")
    ann = await ChatClient.join(server.ws_url, room, "Ann")
    notice, code = await closed_with(ann)
    assert notice["code"] == protocol.IDLE_TIMEOUT and code == protocol.CLOSE_IDLE
    assert "after 1 second without activity" in notice["message"]


async def test_no_socket_outlives_the_maximum_duration(start_server, room):
    server = start_server(CHAT_MAX_CONNECTION_DURATION="2")
    ann = await ChatClient.join(server.ws_url, room, "Ann")
    notice, code = await closed_with(ann)
    assert notice["code"] == protocol.MAX_DURATION and code == protocol.CLOSE_MAX_DURATION
