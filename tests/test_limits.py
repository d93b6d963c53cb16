"""Limits on what one client may send, and on how long a socket stays: others never pay for it."""

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat import protocol

from .support.clients import WAIT, ChatClient
from .support.experiments import Recorder, Registry


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
    replies = [await flood.receive_until(lambda f: f["type"] in {protocol.MESSAGE, protocol.ERROR}) for _ in range(21)]
    replies += await flood.nothing_more(0.5)
    refused = [r for r in replies if r["type"] == protocol.ERROR]
    # A burst of 20 goes through; the 20 refused after it are answered once, not 20 times.
    assert len(replies) - len(refused) >= 20 and len(refused) in (1, 2)
    assert {r["code"] for r in refused} == {protocol.RATE_LIMITED}
    for text in ("one", "two", "three"):
        await ann.say(text)
        assert (await ann.receive_until(lambda f: f["type"] == protocol.MESSAGE))["message"] == text
    await asyncio.gather(flood.close(), ann.close())


async def test_a_client_pacing_itself_at_twice_the_rate_is_disconnected_within_the_window(start_server, room):
    server = start_server(
        CHAT_RATE_LIMIT_PER_SECOND="5", CHAT_RATE_LIMIT_BURST="5", CHAT_FLOOD_LIMIT="20", CHAT_FLOOD_WINDOW="10"
    )
    pacer = await Recorder.join(server.ws_url, room, "Pacer")
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    while pacer.close_code is None and sent < 300:  # 30 s at 10 a second: bounded
        try:
            await pacer.client.say(f"p{sent}")
        except ConnectionClosed:
            break
        sent += 1
        await asyncio.sleep(0.1)  # the workload's pace: twice the rate limit
    await pacer.wait_for(lambda r: r.close_code is not None, what="the close")
    assert pacer.close_code == protocol.CLOSE_POLICY
    assert protocol.FLOODING in [f.get("code") for f in pacer.of_type(protocol.ERROR)]
    assert loop.time() - started < 30
    # Told once a second at most, not once per refused frame.
    assert len(pacer.of_type(protocol.ERROR)) <= loop.time() - started + 2


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


async def connect_from(server, room: str, address: str, name: str, **options):
    """A socket from ``address`` (in 127.0.0.0/8): a ChatClient, or the HTTP status that refused it."""
    try:
        return await ChatClient.join(server.ws_url, room, name, local_addr=(address, 0), **options)
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_the_51st_socket_from_one_address_is_refused_while_others_connect(start_server, room):
    server = start_server(CHAT_CONNECTION_LIMIT_EXEMPT="none", CHAT_MAX_CONNECTS_PER_IP_PER_SECOND="1000")
    crowd = [await connect_from(server, room, "127.0.0.2", f"c{i}") for i in range(50)]
    assert all(isinstance(client, ChatClient) for client in crowd)
    assert await connect_from(server, room, "127.0.0.2", "one-too-many") == 429
    other = await connect_from(server, room, "127.0.0.3", "elsewhere")
    assert isinstance(other, ChatClient)
    # A socket that closes frees its place.
    await crowd.pop().close()
    for _ in range(50):  # bounded: the server counts the close once it has run $disconnect
        again = await connect_from(server, room, "127.0.0.2", "again")
        if isinstance(again, ChatClient):
            break
    assert isinstance(again, ChatClient)
    await asyncio.gather(*(client.close() for client in [*crowd, other, again]))


async def test_new_sockets_from_one_address_are_limited_per_second_and_local_ones_are_exempt(start_server, room):
    server = start_server(CHAT_CONNECTION_LIMIT_EXEMPT="127.0.0.5", CHAT_MAX_CONNECTS_PER_IP_PER_SECOND="3")
    results = [await connect_from(server, room, "127.0.0.4", f"fast{i}") for i in range(10)]
    assert 429 in results and isinstance(results[0], ChatClient)
    exempt = [await connect_from(server, room, "127.0.0.5", f"local{i}") for i in range(10)]
    assert all(isinstance(client, ChatClient) for client in exempt)
    await asyncio.gather(*(c.close() for c in results + exempt if isinstance(c, ChatClient)))


async def test_the_recorded_address_is_the_one_the_trusted_proxy_saw_not_what_the_client_wrote(
    start_server, room, dynamodb_local
):
    behind_proxy = start_server(CHAT_TRUSTED_PROXY_HOPS="1")
    direct = start_server()
    forged = {"X-Forwarded-For": "203.0.113.66, 198.51.100.7"}  # the client wrote the first; the proxy added the last
    registry = Registry(dynamodb_local)

    def source_ip(client: ChatClient) -> str:
        key = {"connectionId": {"S": client.connection_id}}
        item = registry.client.get_item(TableName="ChatConnections", Key=key, ConsistentRead=True)["Item"]
        return item["sourceIp"]["S"]

    ann = await ChatClient.join(behind_proxy.ws_url, room, "Ann", additional_headers=forged)
    bob = await ChatClient.join(direct.ws_url, room, "Bob", additional_headers=forged)
    assert source_ip(ann) == "198.51.100.7"
    assert source_ip(bob) == "127.0.0.1"
    await asyncio.gather(ann.close(), bob.close())
