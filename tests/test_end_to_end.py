"""The chat over real sockets: a daphne process, real Redis, DynamoDB Local, and `websockets` clients."""

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chat import protocol

from .support.clients import ChatClient


def is_message(frame) -> bool:
    return frame["type"] == protocol.MESSAGE


async def test_two_members_of_a_room_both_receive_a_message_and_another_room_does_not(server, room):
    ann = await ChatClient.join(server.ws_url, room, "Ann")
    bob = await ChatClient.join(server.ws_url, room, "Bob")
    eve = await ChatClient.join(server.ws_url, room + "-b", "Eve")
    await ann.say("hello, room")
    for client in (ann, bob):
        frame = await client.receive_until(is_message)
        assert frame["message"] == "hello, room"
        assert frame["name"] == "Ann" and frame["connectionId"] == ann.connection_id and frame["room"] == room
        assert frame["sentAt"].endswith("Z") and len(frame["id"]) == 26
    assert not [f for f in await eve.nothing_more() if is_message(f)]
    for client in (ann, bob, eve):
        await client.close()


async def test_the_registry_item_exists_while_connected_and_is_gone_after(server, room, dynamodb_local):
    client = await ChatClient.join(server.ws_url, room, "Ann", additional_headers={"User-Agent": "e2e-agent/1.0"})
    table = dynamodb_local.client()
    item = table.get_item(TableName="ChatConnections", Key={"connectionId": {"S": client.connection_id}})["Item"]
    assert {k: v.get("S") for k, v in item.items() if k != "expiresAt"} == {
        "connectionId": client.connection_id,
        "channelName": item["channelName"]["S"],
        "room": room,
        "name": "Ann",
        "connectedAt": item["connectedAt"]["S"],
        "instanceId": item["instanceId"]["S"],
        "sourceIp": "127.0.0.1",
        "userAgent": "e2e-agent/1.0",
        "sender": client.welcome["sender"],  # who is on it, for a mute or ban by name
    }
    assert item["channelName"]["S"] and item["instanceId"]["S"] and item["connectedAt"]["S"].endswith("Z")
    assert int(item["expiresAt"]["N"]) > 0
    await client.close()

    def gone() -> bool:
        return "Item" not in table.get_item(
            TableName="ChatConnections", Key={"connectionId": {"S": client.connection_id}}
        )

    for _ in range(100):
        if gone():
            break
        await asyncio.sleep(0.05)
    assert gone()


async def test_others_are_told_when_someone_joins_and_leaves(server, room):
    ann = await ChatClient.join(server.ws_url, room, "Ann")
    bob = await ChatClient.join(server.ws_url, room, "Bob")
    joined = await ann.receive_until(lambda f: f["type"] == protocol.PRESENCE)
    assert joined == {
        "type": "presence",
        "event": "join",
        "connectionId": bob.connection_id,
        "name": "Bob",
        "room": room,
    }
    await bob.close()
    left = await ann.receive_until(lambda f: f["type"] == protocol.PRESENCE and f["event"] == "leave")
    assert left["connectionId"] == bob.connection_id and left["name"] == "Bob"
    await ann.close()


async def test_clients_of_the_aws_samples_chat_work_unchanged(server, room):
    ann = await ChatClient.join(server.ws_url, room, "Ann")
    await ann.send({"action": "sendmessage", "data": "hi"})
    frame = await ann.receive_until(is_message)
    assert frame["message"] == "hi"
    await ann.close()


async def test_malformed_frames_get_errors_and_the_socket_stays_useful(server, room):
    ann = await ChatClient.join(server.ws_url, room, "Ann")
    bad = [
        ("not json at all", protocol.BAD_JSON),
        (b"\x00\xffbinary", protocol.BAD_FRAME),
        ("[]", protocol.BAD_FRAME),
        ("{}", protocol.UNKNOWN_ACTION),
        (json.dumps({"action": "dance"}), protocol.UNKNOWN_ACTION),
        (json.dumps({"action": "sendMessage"}), protocol.INVALID_MESSAGE),
        (json.dumps({"action": "sendMessage", "message": "   "}), protocol.INVALID_MESSAGE),
        (json.dumps({"action": "sendMessage", "message": ["x"]}), protocol.INVALID_MESSAGE),
        (json.dumps({"action": "sendMessage", "message": "x" * 4001}), protocol.MESSAGE_TOO_LONG),
    ] * 2  # 18 frames and one good message: a burst within the rate limit
    for frame, _ in bad:
        await ann.send(frame)
    for _, code in bad:
        error = await ann.receive()
        assert error["type"] == protocol.ERROR and error["code"] == code and error["message"]
    await ann.say("still here")
    assert (await ann.receive_until(is_message))["message"] == "still here"
    await ann.close()


@pytest.mark.parametrize(
    "path", ["/ws/chat/no%20spaces/", "/ws/chat/" + "x" * 65 + "/", "/ws/nowhere/", "/ws/chat/a/b/"]
)
async def test_a_bad_room_or_path_is_refused_at_the_handshake(server, path):
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.ws_url + path, open_timeout=10)
    assert refused.value.response.status_code == 403


async def test_a_page_from_a_foreign_origin_is_refused(server, room):
    with pytest.raises(InvalidStatus) as refused:
        await ChatClient.join(server.ws_url, room, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    allowed = await ChatClient.join(server.ws_url, room, origin=server.url)
    await allowed.close()
