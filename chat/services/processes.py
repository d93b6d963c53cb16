"""
What each server process does for the others: heartbeats, sweeping up after
a process that died, putting back what a sweep took from one that lives,
and leaving cleanly when it drains.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from django.conf import settings

from .. import metrics, protocol
from ..exceptions import ConnectionExists
from ..relay import LocalSocket
from ..stores import Connection, get_connection_store
from .rooms import room_announce

logger = logging.getLogger(__name__)

# A heartbeat is abandoned after this part of an interval, and promises life
# for this many intervals: the next beat starts one interval after this one
# (fixed rate) and lands within a quarter more, so 1.5 leaves a quarter of an
# interval to spare for clock skew between hosts. A dead process is swept
# within 1.5 + 0.25 (the sweep period) intervals. README: "Nobody stuck".
HEARTBEAT_TIMEOUT_INTERVALS = 0.25
STALE_AFTER_INTERVALS = 1.5
# A sweep removes a dead process's connections this many at a time.
SWEEP_BATCH = 25


async def connections_retire(*, sockets: list[LocalSocket]) -> None:
    """
    A draining process's sockets, closed: their registry items removed in
    batches (not one call each) and their rooms told they left.
    """
    connections = [socket.connection for socket in sockets]
    await get_connection_store().remove_many([c.connection_id for c in connections])
    for socket in sockets:
        if socket.announced:
            socket.announced = False
            await room_announce(socket.connection, protocol.LEAVE)
    logger.info("drained connections removed", extra={"count": len(connections)})


async def connections_let_go(*, connections: list[Connection]) -> None:
    """
    Sockets this process let go of while its heartbeat had lapsed, once it
    is back: the registry items that no sweep removed meanwhile are removed
    now, and their rooms told they left (a sweep told them already for the
    rest).
    """
    store = get_connection_store()
    for connection in connections:
        if await store.remove(connection.connection_id) is not None:
            await room_announce(connection, protocol.LEAVE)
    logger.info("connections let go of are gone from the registry", extra={"count": len(connections)})


async def instance_heartbeat(
    *,
    instance_id: str,
    interval: float,
    held: Callable[[], list[Connection]] = list,
    still_held: Callable[[str], bool] = lambda connection_id: True,
    verify: bool = False,
    rooms: Callable[[], dict[str, int]] | None = None,
) -> bool:
    """
    Record that this process is alive for another ``STALE_AFTER_INTERVALS``
    intervals. Returns whether it had been swept: taken for dead (it was too
    slow to beat), its heartbeat forgotten or claimed by a sweeper, so the
    registry may have lost connections it still holds. Then, and with
    ``verify``, every connection in ``held()`` that the registry lacks is put
    back and its room told it is there after all. ``rooms()``: the rooms it
    serves, for the room directory.

    The write is abandoned after ``HEARTBEAT_TIMEOUT_INTERVALS`` of an
    interval (the next beat tries again); it goes through a client and
    threads of its own, so no other DynamoDB work delays it.
    """
    now = time.time()
    store = get_connection_store()
    intact = await asyncio.wait_for(
        store.heartbeat(
            instance_id,
            beat=time.monotonic_ns(),
            at=now,
            stale_at=now + interval * STALE_AFTER_INTERVALS,
            expires_at=int(now + max(settings.CHAT_CONNECTION_TTL, interval * 10)),
            rooms=rooms() if rooms else None,
        ),
        interval * HEARTBEAT_TIMEOUT_INTERVALS,
    )
    if not intact or verify:
        await _restore(instance_id, held(), still_held, swept=not intact)
    return not intact


async def _restore(instance_id: str, held: list[Connection], still_held: Callable[[str], bool], *, swept: bool) -> None:
    """Put back the registry items of ``held`` connections that a sweep removed."""
    if not held:
        return
    store = get_connection_store()
    registered = set(await store.held_by(instance_id))
    missing = [c for c in held if c.connection_id not in registered and still_held(c.connection_id)]
    if swept or missing:
        logger.warning("swept while alive; registering connections again", extra={"count": len(missing)})
    for connection in missing:
        try:
            await store.add(connection)
        except ConnectionExists:
            continue
        if not still_held(connection.connection_id):  # it closed meanwhile: no ghost
            await store.remove(connection.connection_id)
            continue
        await room_announce(connection, protocol.JOIN)


async def instance_sweep(*, instance_id: str, interval: float) -> list[Connection]:
    """
    Remove the connections of every server process whose heartbeat is stale,
    and tell their rooms they left. One sweeper claims each stale process (a
    conditional write); the others pass it by. A process's heartbeat is
    forgotten once a sweep finds nothing left of it, and only while it is
    still stale. Returns the connections removed here.
    """
    store = get_connection_store()
    now = time.time()
    removed: list[Connection] = []
    for instance in await store.instances():
        if instance.instance_id == instance_id or instance.stale_at > now:
            continue
        removed += await instance_sweep_one(instance.instance_id, sweeper=instance_id, now=now, interval=interval)
    if removed:
        logger.warning("swept connections of dead server processes", extra={"count": len(removed)})
    return removed


async def instance_sweep_one(dead: str, *, sweeper: str, now: float, interval: float) -> list[Connection]:
    store = get_connection_store()
    # Another sweeper's claim lapses after two sweep periods (it may have died mid-sweep).
    if not await store.claim_instance(dead, sweeper=sweeper, now=now, lapse_before=now - interval / 2):
        return []
    metrics.SWEEPS.inc()
    claimed_at = time.time()
    removed: list[Connection] = []
    held = await store.held_by(dead)
    for start in range(0, len(held), SWEEP_BATCH):
        # A sweep longer than a sweep period renews its claim, so no other sweeper takes
        # over while it works; it stops if the claim is lost (the process beat again).
        if time.time() - claimed_at >= interval / 4:
            claimed_at = time.time()
            if not await store.claim_instance(
                dead, sweeper=sweeper, now=claimed_at, lapse_before=claimed_at - interval / 2
            ):
                logger.info("sweep stopped: the process is alive after all", extra={"instance_id": dead})
                break
        # Side by side, so that the store can remove them in one call.
        batch = await asyncio.gather(*(store.remove(c) for c in held[start : start + SWEEP_BATCH]))
        for connection in batch:
            if connection is not None:
                removed.append(connection)
                metrics.SWEPT_CONNECTIONS.inc()
                await room_announce(connection, protocol.LEAVE)
    if not held and await store.forget_instance(dead, stale_before=now):
        logger.info("server process swept", extra={"instance_id": dead})
    return removed


async def instance_retire(*, instance_id: str) -> None:
    """A process that drained removes its own heartbeat: nothing is left to sweep."""
    await get_connection_store().forget_instance(instance_id)
