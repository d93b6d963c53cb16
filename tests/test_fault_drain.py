"""
Rolling deploys drain instead of dropping.

On SIGTERM a process fails ``/readyz`` at once, refuses new sockets at the
handshake, tells every socket it holds to reconnect elsewhere
(``server_restart``, then close 1012) at moments spread over
``CHAT_DRAIN_SECONDS``, removes their registry items and tells their rooms
they left, deletes its heartbeat and exits well inside ECS's stopTimeout.
Clients that reconnect to another process with ``?since=`` miss nothing.
"""

import asyncio
import json
import logging
import signal
import time
import uuid

from chat import protocol

from .support.experiments import (
    RawSocket,
    Reconnecting,
    Recorder,
    Registry,
    aws_operations,
    eventually,
    messages_exactly_once,
    send_signal,
    told_to_reconnect,
)

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 4
ECS_STOP_TIMEOUT_MARGIN = 5  # seconds after the drain window by which the process has exited
MAX_MESSAGES = 200  # bounds the sender: paced, it sends far fewer while the drain lasts


def instance_env(name: str) -> dict[str, str]:
    return {"CHAT_INSTANCE_ID": f"test-{name}-{uuid.uuid4().hex[:8]}", "CHAT_DRAIN_SECONDS": str(DRAIN_SECONDS)}


def readiness(server) -> tuple[int, str | None]:
    status, body = server.get("/readyz", timeout=1)
    return status, json.loads(body).get("checks", {}).get("process")


async def join_all(server, room: str, names: list[str]) -> list[Recorder]:
    gate = asyncio.Semaphore(10)

    async def join(name: str) -> Recorder:
        async with gate:
            return await Recorder.join(server.ws_url, room, name)

    return list(await asyncio.gather(*(join(name) for name in names)))


async def keep_sending(sender: Recorder, sent: list[str], until: asyncio.Event) -> None:
    """Messages one after another, each once its echo came back, until told to stop."""
    for index in range(MAX_MESSAGES):
        if until.is_set():
            return
        text = f"during-{index}"
        sent.append(text)
        await sender.client.say(text)
        await sender.wait_for(lambda r, text=text: text in r.messages(), what=f"the echo of {text}")
        await asyncio.sleep(0.1)  # pacing, within the rate limit


async def test_sigterm_drains_every_socket_to_another_process_and_leaves_nothing_behind(
    start_server, room, dynamodb_local
):
    # Tables of the test's own: every registry call the checker sees is of this test's processes.
    registry = await Registry.of_its_own(dynamodb_local)
    a_env, b_env = instance_env("a"), instance_env("b")
    a, b = start_server(**a_env, **registry.env), start_server(**b_env, **registry.env)
    a_id = a_env["CHAT_INSTANCE_ID"]

    # Workload: 10 people on B, 50 on A; all saw "before". A sender on B keeps talking through the
    # drain, and everyone A closes reconnects to B with ?since=, as the page does.
    on_b = await join_all(b, room, [f"B{i}" for i in range(10)])
    on_a = await join_all(a, room, [f"A{i}" for i in range(50)])
    a_ids = {r.connection_id for r in on_a}
    await asyncio.to_thread(registry.wait_for_room, room, a_ids | {r.connection_id for r in on_b})
    sender = on_b[0]
    sent = ["before"]
    await sender.client.say("before")
    for reader in on_a + on_b:
        await reader.wait_for(lambda r: "before" in r.messages(), what="the first message")
    people = [Reconnecting(recorder, room) for recorder in on_a]
    done_sending = asyncio.Event()
    sending = asyncio.create_task(keep_sending(sender, sent, done_sending))
    reconnects = [asyncio.create_task(person.reconnect(b.ws_url, DRAIN_SECONDS + 1)) for person in people]

    # Fault: A is told to stop, as ECS does in a rolling deploy.
    terminated_at = send_signal(a, signal.SIGTERM)

    # Checker, during the drain: A is not ready at once, and takes no new socket.
    await eventually(lambda: readiness(a) == (503, "draining"), timeout=1, what="A's /readyz to answer draining")
    assert time.monotonic() - terminated_at <= 1
    refused = await asyncio.to_thread(RawSocket, a.port, RawSocket.chat_path(room, name="Late"))
    assert refused.status == 403
    refused.close()
    assert a.process.alive(), "A should still be draining"

    # ... then: A has exited within the window plus five seconds, everyone of A was told to reconnect
    # within the window, at moments spread over at least a quarter of it, and is back on B.
    await asyncio.to_thread(a.process.process.wait, DRAIN_SECONDS + ECS_STOP_TIMEOUT_MARGIN)
    exited_after = time.monotonic() - terminated_at
    assert exited_after <= DRAIN_SECONDS + ECS_STOP_TIMEOUT_MARGIN
    await asyncio.gather(*reconnects)
    closes = sorted(recorder.closed_at - terminated_at for recorder in on_a)
    logger.info("A exited %.2f s after SIGTERM; closes from %.2f s to %.2f s", exited_after, closes[0], closes[-1])
    assert [r.connection_id for r in on_a if not told_to_reconnect(r)] == []
    assert closes[-1] <= DRAIN_SECONDS
    assert closes[-1] - closes[0] >= DRAIN_SECONDS / 4

    # Nothing of A is left in the registry, removed in batches (not one call each), and B's members
    # saw each of A's people leave.
    assert registry.missing(a_ids) == a_ids
    assert registry.held_by(a_id) == set()
    assert registry.heartbeat(a_id) is None
    calls = {(op["operation"], op.get("TableName")) for op in aws_operations(a)}
    assert ("BatchWriteItem", registry.connections_table) in calls
    assert ("DeleteItem", registry.connections_table) not in calls
    for member in on_b:
        await member.wait_for(lambda r: a_ids <= set(r.presence(protocol.LEAVE)), what="a leave for each of A")

    # Everyone, moved or not, has every message sent meanwhile, once.
    done_sending.set()
    await sending
    assert len(sent) > 10, "the sender should have kept talking through the drain"
    sent.append("after")
    await sender.client.say("after")
    readers = people + on_b
    for reader in [person.current for person in people] + on_b:
        await reader.wait_for(lambda r: "after" in r.messages(), what="the last message")
    assert messages_exactly_once(readers, sent) == {}
    await asyncio.gather(*(r.close() for r in [person.current for person in people] + on_b))
