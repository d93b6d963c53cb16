"""A full room under load: every message reaches every member, none lost, none twice, in order."""

import asyncio
import json
import resource
import time

from websockets.asyncio.client import connect

from chat import protocol

from .support.clients import WAIT, ChatClient

MEMBERS = 1000
RATE = 10  # messages a second
SECONDS = 10


async def test_a_room_of_1000_gets_every_message_of_a_10_per_second_stream(start_server, room):
    """Proves: 100 messages to 1,000 members are 100,000 deliveries, each counted, in order."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    server = start_server()
    received: list[list[str]] = [[] for _ in range(MEMBERS)]
    sockets = []
    gate = asyncio.Semaphore(50)

    async def member(i: int) -> None:
        async with gate:
            ws = await asyncio.wait_for(connect(f"{server.ws_url}/ws/chat/{room}/?name=m{i}", max_queue=None), WAIT)
            assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == protocol.WELCOME
        sockets.append(ws)
        async for text in ws:
            frame = json.loads(text)
            if frame["type"] == protocol.MESSAGE:
                received[i].append(frame["message"])
                if len(received[i]) == RATE * SECONDS:
                    return

    readers = [asyncio.create_task(member(i)) for i in range(MEMBERS)]
    deadline = time.monotonic() + 120
    while len(sockets) < MEMBERS:  # bounded: every member connects, or the test fails here
        assert time.monotonic() < deadline, f"only {len(sockets)} of {MEMBERS} members connected"
        done = [t for t in readers if t.done() and t.exception()]
        assert not done, done[0].exception()
        await asyncio.sleep(0.1)

    sender = await ChatClient.join(server.ws_url, room, "sender")
    sent = [f"msg-{n:03d}" for n in range(RATE * SECONDS)]
    start = time.monotonic()
    for n, text in enumerate(sent):  # paced at RATE a second: the load, not a wait
        await asyncio.sleep(max(0.0, start + n / RATE - time.monotonic()))
        await sender.say(text)
    await asyncio.wait_for(asyncio.gather(*readers), timeout=60)

    assert all(r == sent for r in received), [len(r) for r in received if r != sent][:10]
    await asyncio.gather(sender.close(), *(ws.close() for ws in sockets))
