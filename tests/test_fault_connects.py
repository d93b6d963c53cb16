"""
A connect that fails half-way leaves nothing behind: no registry item, no
member in the process's rooms, no ``join`` without its ``leave``.
"""

import asyncio
import base64
import json
import os
import random
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

from websockets.asyncio.client import connect

from chat import protocol

from .support.clients import WAIT
from .support.experiments import Recorder, Registry, joins_matched_by_leaves
from .support.redis import RedisServer


async def first_frame(url: str) -> dict:
    async with connect(url) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def test_connects_while_redis_is_down_leave_no_registry_item(start_server, room, dynamodb_local):
    redis = RedisServer().start()
    try:
        server = start_server(REDIS_URL=redis.url)
        registry = Registry(dynamodb_local)
        # Workload: the process already serves the room, so a connect needs Redis only to announce itself.
        ann = await Recorder.join(server.ws_url, room, "Ann")

        # Fault: Redis goes away while ten people try to join.
        redis.kill()
        for index in range(10):
            frame = await first_frame(f"{server.ws_url}/ws/chat/{room}/?name=Guest{index}")
            assert (frame["type"], frame["code"]) == (protocol.ERROR, protocol.SERVER_UNAVAILABLE)

        # Checker: nobody but Ann is registered, now and once Redis is back.
        assert registry.room(room) == {ann.connection_id}
        redis.start()
        for _ in range(40):  # bounded: the relay reconnects to Redis within seconds
            try:
                frame = await first_frame(f"{server.ws_url}/ws/chat/{room}/?name=Bob")
            except OSError:
                continue
            if frame["type"] == protocol.WELCOME:
                break
        assert frame["type"] == protocol.WELCOME, frame
        assert {m["name"] for m in frame["members"]} == {"Ann", "Bob"}
        registry.wait_for_room(room, {ann.connection_id})
        await ann.close()
    finally:
        redis.stop()


HANDSHAKE = (
    "GET /ws/chat/{room}/?name=Drop{index} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
# Where a client drops: before the server's 101, right after it, during the welcome, after it;
# by closing its socket, by a reset, or by a WebSocket close frame (the server's socket is then closing).
DROP_POINTS = ("before-101", "after-101", "during-welcome", "after-welcome")
DROP_WAYS = ("close", "reset", "close-frame")


def connect_and_drop(port: int, room: str, index: int, rng: random.Random) -> None:
    point, way = rng.choice(DROP_POINTS), rng.choice(DROP_WAYS)
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(HANDSHAKE.format(room=room, index=index, port=port, key=key).encode())
        if point != "before-101":
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                received += chunk
            if point == "during-welcome":
                time.sleep(rng.uniform(0, 0.02))  # the workload's randomness: drop somewhere in the welcome
            elif point == "after-welcome":
                sock.recv(1)
        if way == "close-frame" and point != "before-101":
            mask = os.urandom(4)
            payload = struct.pack(">H", 1000)
            sock.sendall(
                bytes([0x88, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            )
        elif way == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass  # the server may have closed first
    finally:
        sock.close()


async def test_clients_dropping_at_random_points_of_their_connect_leave_no_ghost(start_server, room, dynamodb_local):
    server = start_server()
    registry = Registry(dynamodb_local)
    ann = await Recorder.join(server.ws_url, room, "Ann")

    # Workload and fault at once: 200 clients that each drop somewhere in their connect.
    rng = random.Random(11)
    seeds = [random.Random(rng.random()) for _ in range(200)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        await asyncio.gather(
            *(
                asyncio.get_running_loop().run_in_executor(pool, connect_and_drop, server.port, room, i, seeds[i])
                for i in range(200)
            )
        )

    # Checker: the registry and the process's room hold Ann alone, and every join Ann saw has its leave.
    await asyncio.to_thread(registry.wait_for_room, room, {ann.connection_id}, 30)
    await ann.wait_for(lambda r: not joins_matched_by_leaves(r), 20, what="a leave for every join")
    assert ann.presence(protocol.JOIN), "no connect got as far as its join: the test dropped them all too early"
    newcomer = await Recorder.join(server.ws_url, room, "Bob")
    assert [m["connectionId"] for m in newcomer.welcome["members"]] == [ann.connection_id, newcomer.connection_id]
    assert "Exception inside application" not in server.output()
    await asyncio.gather(ann.close(), newcomer.close())
