"""
The sweep never erases the living, and never does its work twice.

A process is taken for dead once its heartbeat is stale. One that was only
slow (here: stopped with SIGSTOP) finds out at its next heartbeat, whether
its heartbeat item was claimed by a sweeper or already forgotten, and puts
back every socket it still holds; its rooms hear a ``join``. A process that
really died is swept by one survivor, whatever the number of survivors.
"""

import asyncio
import logging
import signal
import time
import uuid
from collections import Counter

import pytest

from chat import protocol

from .support.experiments import (
    Recorder,
    Registry,
    api_status,
    aws_operations,
    eventually,
    logged,
    send_signal,
)

logger = logging.getLogger(__name__)

INTERVAL = 3  # CHAT_HEARTBEAT_INTERVAL: a sweep pass every 0.75 s, stale after 4.5 s
TOKEN = f"token-{uuid.uuid4().hex}"
SWEPT = "swept connections of dead server processes"


def instance_env(name: str) -> dict[str, str]:
    return {
        "CHAT_INSTANCE_ID": f"test-{name}-{uuid.uuid4().hex[:8]}",
        "CHAT_HEARTBEAT_INTERVAL": str(INTERVAL),
        "CHAT_MANAGEMENT_TOKEN": TOKEN,
    }


def last_presence(observer: Recorder, connection_id: str) -> list[str]:
    """The presence events the observer saw for one connection, in order."""
    return [f["event"] for f in observer.of_type(protocol.PRESENCE) if f["connectionId"] == connection_id]


async def join_all(server, room: str, names: list[str]) -> list[Recorder]:
    return list(await asyncio.gather(*(Recorder.join(server.ws_url, room, name) for name in names)))


@pytest.mark.parametrize(
    "stop",
    [
        # Resumed the moment the first sweep pass has removed its connections: its heartbeat item is
        # still there, claimed by the sweeper. Before claims, this process never restored them.
        "until-first-sweep-pass",
        # Stopped for three intervals: the sweep has forgotten its heartbeat item too.
        "three-intervals",
    ],
)
async def test_a_process_taken_for_dead_while_stopped_puts_back_every_socket_it_holds(
    start_server, room, dynamodb_local, stop
):
    registry = await Registry.of_its_own(dynamodb_local)  # no other test's stale process to sweep
    a_env, b_env = instance_env("a"), instance_env("b")
    a, b = start_server(**a_env, **registry.env), start_server(**b_env, **registry.env)
    a_id, b_id = a_env["CHAT_INSTANCE_ID"], b_env["CHAT_INSTANCE_ID"]

    # Workload: an observer on B; four people on A who stay, and one who leaves while A is stopped.
    observer = await Recorder.join(b.ws_url, room, "Bea")
    stayers = await join_all(a, room, ["Ann", "Al", "Abe", "Ava"])
    leaver = await Recorder.join(a.ws_url, room, "Lee")
    held = {r.connection_id for r in stayers}
    on_a = held | {leaver.connection_id}
    await observer.wait_for(lambda r: on_a <= set(r.presence(protocol.JOIN)), what="everyone on A joining")
    assert registry.held_by(a_id) == on_a

    # Fault: A stops; B's sweep takes it for dead and removes its connections.
    stopped_at = send_signal(a, signal.SIGSTOP)
    leaving = asyncio.create_task(leaver.close())  # A reads Lee's close only once it runs again
    await eventually(lambda: registry.missing(on_a) == on_a, timeout=4 * INTERVAL, what="A's connections swept")
    claim = registry.swept_by(a_id)  # None once the heartbeat is gone
    if stop == "until-first-sweep-pass":
        assert claim is not None, "A's heartbeat should still be there"
    else:
        await eventually(lambda: registry.heartbeat(a_id) is None, timeout=3 * INTERVAL, what="A's heartbeat gone")
        # The fault's length, not a wait for anything: A stays stopped for three intervals in all.
        await asyncio.sleep(max(0.0, stopped_at + 3 * INTERVAL - time.monotonic()))
    resumed_at = send_signal(a, signal.SIGCONT)
    await leaving

    # Checker: within two intervals every socket A still holds is registered again, and Lee is not.
    await eventually(lambda: not registry.missing(held), timeout=2 * INTERVAL, what="A's sockets back in the registry")
    logger.info("restored %.2f s after SIGCONT (%s)", time.monotonic() - resumed_at, stop)
    await eventually(lambda: not registry.has(leaver.connection_id), timeout=INTERVAL, what="no registry item for Lee")
    if stop == "until-first-sweep-pass":
        assert claim == b_id, "B should have claimed A before it swept it"
    await eventually(lambda: registry.held_by(a_id) == held, timeout=INTERVAL, what="A's index entries")
    await observer.wait_for(
        lambda r: all(last_presence(r, cid)[-2:] == [protocol.LEAVE, protocol.JOIN] for cid in held),
        what="a leave, then a join again, for everyone on A",
    )
    for cid in held:
        assert await asyncio.to_thread(api_status, b, cid, TOKEN) == 200, cid
    probes = [await Recorder.join(server.ws_url, room, "Probe") for server in (a, b)]
    expected = held | {observer.connection_id} | {probe.connection_id for probe in probes}
    for probe in probes:
        await probe.wait_for(lambda r: r.roster() == expected, what=f"the roster {expected}")
    await asyncio.gather(*(r.close() for r in [observer, *stayers, *probes]))


async def test_one_survivor_sweeps_a_killed_process_however_many_survive(start_server, room, dynamodb_local):
    # Tables of the test's own: every sweep the checker sees is of this test's processes.
    registry = await Registry.of_its_own(dynamodb_local)
    envs = [{**instance_env(name), **registry.env} for name in ("doomed", "b", "c")]
    doomed, *survivors = [start_server(**env) for env in envs]
    doomed_id = envs[0]["CHAT_INSTANCE_ID"]

    # Workload: an observer on each survivor; thirty people on the doomed process.
    observers = [await Recorder.join(server.ws_url, room, "Obs") for server in survivors]
    victims = {r.connection_id for r in await join_all(doomed, room, [f"V{i}" for i in range(30)])}
    for observer in observers:
        await observer.wait_for(lambda r: victims <= set(r.presence(protocol.JOIN)), what="thirty joins")

    # Fault: the doomed process dies without a word.
    send_signal(doomed, signal.SIGKILL)

    # Checker: the sweep ran to its end (connections and heartbeat gone), each leave was told once ...
    await eventually(lambda: registry.missing(victims) == victims, timeout=3 * INTERVAL, what="the victims swept")
    await eventually(lambda: registry.heartbeat(doomed_id) is None, timeout=INTERVAL, what="the heartbeat forgotten")
    for observer in observers:
        await observer.wait_for(lambda r: victims <= set(r.presence(protocol.LEAVE)), what="thirty leaves")
        leaves = Counter(cid for cid in observer.presence(protocol.LEAVE) if cid in victims)
        assert set(leaves.values()) == {1}, leaves
    # ... and one survivor did all the work: the other never even read what the dead process held.
    read_holdings = {
        server.name: any(op["operation"] == "Query" and op.get("IndexName") == "instance-index" for op in ops)
        for server, ops in ((server, aws_operations(server)) for server in survivors)
    }
    sweeps = {server.name: logged(server, SWEPT) for server in survivors}
    assert sum(read_holdings.values()) == 1, (read_holdings, {s.name: logged(s, "swept") for s in survivors})
    (sweeper,) = [name for name, read in read_holdings.items() if read]
    assert [name for name, lines in sweeps.items() if lines] == [sweeper], sweeps
    assert sum(int(line.rsplit("count=", 1)[1].split()[0]) for line in sweeps[sweeper]) == len(victims)
    await asyncio.gather(*(r.close() for r in observers))
