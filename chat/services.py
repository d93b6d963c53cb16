"""
What users do: connect, send, read history, leave; and what each server
process does for the others: heartbeats, and sweeping up after a process
that died. The consumer, the admin, management commands and the
``@connections`` API all come through here; none of them reaches around
these functions into the stores or the channel layer.
"""

import asyncio
import hashlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from channels.layers import get_channel_layer
from django.conf import settings

from . import protocol
from .exceptions import ConnectionExists, ConnectionGone, StoreError
from .relay import LocalSocket, Room, get_room_relay, room_event, room_group, socket_close, socket_frame
from .stores import Connection, Page, get_connection_store, get_message_store
from .stores.base import SEND_PENDING

logger = logging.getLogger(__name__)

# How many members one welcome frame lists at most.
WELCOME_MEMBERS_LIMIT = 1000
# Pages of 1,000 read at most to seed a room's roster in a process.
ROSTER_PAGES = 100
# Seconds a message waits for its history write before it is sent regardless.
HISTORY_WRITE_TIMEOUT = 2.0
# A heartbeat is abandoned after this part of an interval, and promises life
# for this many intervals: the next beat starts one interval after this one
# (fixed rate) and lands within a quarter more, so 1.5 leaves a quarter of an
# interval to spare for clock skew between hosts. A dead process is swept
# within 1.5 + 0.25 (the sweep period) intervals. README: "Nobody stuck".
HEARTBEAT_TIMEOUT_INTERVALS = 0.25
STALE_AFTER_INTERVALS = 1.5


def connection_new(*, connection_id: str, room: str, name: str, source_ip: str, user_agent: str) -> Connection:
    """
    A connection record as ``$connect`` registers it. Its ``channelName`` is
    this process's room relay channel (started by ``ServerInstance.start``),
    which reaches the socket from any process.
    """
    return Connection(
        connection_id=connection_id,
        channel_name=get_room_relay().channel,
        room=room,
        name=name,
        connected_at=protocol.iso_timestamp(),
        instance_id=settings.CHAT_INSTANCE_ID,
        source_ip=source_ip,
        user_agent=user_agent,
        expires_at=int(time.time()) + settings.CHAT_CONNECTION_TTL,
    )


class Registration(NamedTuple):
    """What a welcome frame says, and the seq up to which live messages are skipped (history or client has them)."""

    members: list[dict[str, str]]
    history: list[dict[str, Any]]
    truncated: bool
    after_seq: int


async def connection_register(*, socket: LocalSocket, since: int | str | None = None) -> Registration:
    """
    ``$connect``: record the connection, subscribe its socket to the room and
    tell the room. Returns the members and the history for the welcome
    frame: the latest messages, or with ``since`` (a seq, or the id of a
    message as cursors were before seqs) every message after it; when more
    than the recovery limit, or more than ``CHAT_MAX_HISTORY_BYTES``, the
    latest that fit, and ``truncated``. Live messages wait in ``socket``
    until it is ready, so none falls between the history and the live
    stream. On any failure, cancellation included, it is undone whole
    (registry item, room membership, and a ``leave`` for a ``join`` already
    announced) and the error propagates.
    """
    connection = socket.connection
    store = get_connection_store()
    relay = get_room_relay()

    async def join_and_read() -> tuple[Room, list[dict[str, Any]], bool, int]:
        # The socket joins before the history is read, so no message falls between them.
        room = await relay.join(connection.room, socket, seed=room_seed)
        # Where this process's ordered delivery stands: every message up to it is stored, and the ones after
        # it reach the socket live, in seq order.
        delivered = room.last_seq or 0
        messages = get_message_store()
        after = since
        if isinstance(since, str):  # an id: the messages whose ids sort above it
            after = await messages.seq_by_id(connection.room, since, inclusive=True)
        more = False
        if after is None:
            history = room.latest()
            if history is None:
                history = await messages.latest(connection.room, limit=settings.CHAT_HISTORY_LIMIT)
        else:
            # Recovery always reads the store: a message another process stored but
            # could not publish is in the store, and in no process's memory.
            limit = settings.CHAT_RECOVERY_LIMIT
            history, more = await messages.after(connection.room, after, limit=limit)
            if more:  # away too long to replay everything: the latest, so live ones follow on without a gap
                history = await messages.latest(connection.room, limit=limit)
        # Past the delivery the store may hold a message while an earlier one is still being written: a hole
        # that live frames up to the history's end would be skipped as seen. So the history goes past it only
        # as far as it follows on without a hole; the live stream brings the rest in order.
        upto = max(delivered, after or 0)
        if more and history:  # the latest only: what comes before them is the client's to page back to
            upto = max(delivered, history[0]["seq"] - 1)
        for index, message in enumerate(history):
            if message["seq"] > upto + 1:
                history = history[:index]
                break
            upto = max(upto, message["seq"])
        history, cut = protocol.latest_within(history, settings.CHAT_MAX_HISTORY_BYTES)
        return room, history, more or cut, upto

    try:
        # The registry write and the room's side run together: one round trip, not two.
        added, joined = await asyncio.gather(store.add(connection), join_and_read(), return_exceptions=True)
        for outcome in (added, joined):
            if isinstance(outcome, BaseException):
                raise outcome
        room, history, truncated, after_seq = joined
        room.roster[connection.connection_id] = connection.name
        members = [
            protocol.member(cid, name) for cid, name in itertools.islice(room.roster.items(), WELCOME_MEMBERS_LIMIT)
        ]
        socket.announced = True  # a failed publish may still have reached some: its leave is owed either way
        await _announce(connection, protocol.JOIN)
    except BaseException:
        await _undo(connection_disconnect(socket=socket))
        raise
    logger.info("connection registered", extra={"connection_id": connection.connection_id, "room": connection.room})
    return Registration(members, history, truncated, after_seq)


async def _undo(cleanup: Awaitable[None]) -> None:
    """Run a clean-up to its end even if the caller is being cancelled; log what it could not do."""
    task = asyncio.ensure_future(cleanup)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("clean-up after a failed connect failed")


async def connection_disconnect(*, socket: LocalSocket) -> None:
    """
    ``$disconnect``, and the undoing of a connect that failed half-way:
    unsubscribe the socket, forget the connection, tell the room it left if
    it was told it joined. Idempotent. A drained socket's registry item is
    the drain's to remove (in a batch).
    """
    connection = socket.connection
    try:
        await get_room_relay().leave(connection.room, connection.connection_id)
    finally:
        if not socket.drained:
            removed = await get_connection_store().remove(connection.connection_id)
            if removed is not None and socket.announced:  # otherwise a sweep already told the room
                socket.announced = False
                await _announce(connection, protocol.LEAVE)
    logger.info("connection removed", extra={"connection_id": connection.connection_id, "room": connection.room})


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
            await _announce(socket.connection, protocol.LEAVE)
    logger.info("drained connections removed", extra={"count": len(connections)})


async def message_broadcast(
    *, sender: Connection, identity: str, text: str, client_message_id: str | None = None
) -> tuple[dict[str, Any] | None, bool]:
    """
    ``sendMessage``: give the message the room's next seq, store it, then
    send it to everyone in the sender's room, the sender included. Stored
    first, so a client that recovers from the history never misses what was
    delivered live; if the history cannot be written in time, it still goes
    out live. Without a seq (the store cannot give one) it is not sent.

    With ``client_message_id``, a send that ``identity`` already made in
    this room within ``CHAT_DEDUP_WINDOW`` is not made again: returns
    ``(original frame, True)`` for the sender alone, or ``(None, True)``
    while the first is still under way. Otherwise ``(frame, False)``.
    """
    store = get_message_store()
    room = sender.room
    key = None
    if client_message_id:
        key = _send_key(room, identity, client_message_id)
        original = await store.claim_send(key, expires_at=int(time.time()) + settings.CHAT_DEDUP_WINDOW)
        if original is not None:
            logger.info("resent message not sent again", extra={"room": room, "seq": original or None})
            return (await store.get(room, original) if original != SEND_PENDING else None), True
    seq = await store.next_seq(room)  # failing, the claim lapses after PENDING_SEND_LAPSE: a retry goes ahead
    frame = protocol.message_frame(
        message_id=protocol.new_message_id(),
        seq=seq,
        room=room,
        connection_id=sender.connection_id,
        name=sender.name,
        text=text,
        sent_at=protocol.iso_timestamp(),
        client_message_id=client_message_id,
    )
    expires_at = int(time.time()) + settings.CHAT_HISTORY_RETENTION
    # The claim is settled beside the history write, not after it: were the write to fail or
    # time out, a resend must still find this send made rather than make it a second time.
    writes = [store.append(frame, expires_at=expires_at)] + ([store.settle_send(key, seq)] if key else [])
    outcomes = await asyncio.gather(
        *(asyncio.wait_for(w, HISTORY_WRITE_TIMEOUT) for w in writes), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, (StoreError, TimeoutError)):
            logger.warning("message not stored: %s", outcome or "timed out", extra={"room": room, "seq": seq})
        elif isinstance(outcome, BaseException):
            raise outcome
    try:
        await room_send(room=room, frame=frame, message_id=frame["id"], seq=seq)
    except Exception:
        get_room_relay().distrust_recent(room)  # stored, but this process never relayed it
        raise
    return frame, False


def _send_key(room: str, identity: str, client_message_id: str) -> str:
    # Hashed: a guest's identity is a secret that proves who they are, and is not stored as it is.
    return hashlib.sha256(f"{room}\0{identity}\0{client_message_id}".encode()).hexdigest()


async def history_page(*, room: str, before: int | str | None = None, after: int | None = None) -> dict[str, Any]:
    """
    The ``history`` action: the page of messages just before ``before`` (a
    seq, or a message id), or just after ``after`` (a seq), within
    ``CHAT_MAX_HISTORY_BYTES``; ``more`` says whether the client should ask again.
    """
    store = get_message_store()
    limit = settings.CHAT_HISTORY_LIMIT
    if after is not None:
        messages, more = await store.after(room, after, limit=limit)
        # Forward pages keep the earliest that fit, so the next page starts where this one ends.
        messages, cut = protocol.earliest_within(messages, settings.CHAT_MAX_HISTORY_BYTES)
        return protocol.history_frame(messages=messages, more=more or cut)
    if isinstance(before, str):  # an id: the messages whose ids sort below it
        before = await store.seq_by_id(room, before, inclusive=False) + 1
    messages, more = await store.before(room, before, limit=limit)
    messages, cut = protocol.latest_within(messages, settings.CHAT_MAX_HISTORY_BYTES)
    return protocol.history_frame(messages=messages, more=more or cut)


async def room_send(
    *, room: str, frame: dict, exclude: str | None = None, message_id: str | None = None, seq: int | None = None
) -> None:
    """Encode a frame once and hand it to every process holding members of ``room``."""
    presence = None
    if frame["type"] == protocol.PRESENCE:
        presence = {key: frame[key] for key in ("event", "connectionId", "name")}
    event = room_event(
        room=room, text=protocol.encode(frame), exclude=exclude, message_id=message_id, seq=seq, presence=presence
    )
    await get_channel_layer().group_send(room_group(room), event)


async def room_seed(room: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """What a process needs to serve a room it joins: its roster and its latest messages."""
    roster, recent = await asyncio.gather(
        room_roster(room), get_message_store().latest(room, limit=settings.CHAT_HISTORY_LIMIT)
    )
    return roster, recent


async def room_roster(room: str) -> dict[str, str]:
    """Everyone the registry holds in ``room`` (connection id -> name), read through the room index."""
    roster: dict[str, str] = {}
    cursor = None
    for _ in range(ROSTER_PAGES):
        page = await get_connection_store().members(room, limit=1000, cursor=cursor)
        roster.update((c.connection_id, c.name) for c in page.items)
        if (cursor := page.cursor) is None:
            break
    return roster


async def _announce(connection: Connection, event: str) -> None:
    """Tell the connection's room it joined or left (a join goes to everyone else)."""
    frame = protocol.presence_frame(
        event=event, connection_id=connection.connection_id, name=connection.name, room=connection.room
    )
    exclude = connection.connection_id if event == protocol.JOIN else None
    await room_send(room=connection.room, frame=frame, exclude=exclude)


# --- Server processes ----------------------------------------------------------


async def instance_heartbeat(
    *,
    instance_id: str,
    interval: float,
    held: Callable[[], list[Connection]] = list,
    still_held: Callable[[str], bool] = lambda connection_id: True,
    verify: bool = False,
) -> bool:
    """
    Record that this process is alive for another ``STALE_AFTER_INTERVALS``
    intervals. Returns whether it had been swept: taken for dead (it was too
    slow to beat), its heartbeat forgotten or claimed by a sweeper, so the
    registry may have lost connections it still holds. Then, and with
    ``verify``, every connection in ``held()`` that the registry lacks is put
    back and its room told it is there after all.

    The write is abandoned after ``HEARTBEAT_TIMEOUT_INTERVALS`` of an
    interval (the next beat tries again); it goes through a client and
    threads of its own, so no other DynamoDB work delays it.
    """
    now = time.time()
    store = get_connection_store()
    intact = await asyncio.wait_for(
        store.heartbeat(
            instance_id,
            at=now,
            stale_at=now + interval * STALE_AFTER_INTERVALS,
            expires_at=int(now + max(settings.CHAT_CONNECTION_TTL, interval * 10)),
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
        await _announce(connection, protocol.JOIN)


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
        removed += await _sweep_instance(instance.instance_id, sweeper=instance_id, now=now, interval=interval)
    if removed:
        logger.warning("swept connections of dead server processes", extra={"count": len(removed)})
    return removed


async def _sweep_instance(dead: str, *, sweeper: str, now: float, interval: float) -> list[Connection]:
    store = get_connection_store()
    # Another sweeper's claim lapses after two sweep periods (it may have died mid-sweep).
    if not await store.claim_instance(dead, sweeper=sweeper, now=now, lapse_before=now - interval / 2):
        return []
    claimed_at = time.time()
    removed: list[Connection] = []
    held = await store.held_by(dead)
    for connection_id in held:
        # A sweep longer than a sweep period renews its claim, so no other sweeper takes
        # over while it works; it stops if the claim is lost (the process beat again).
        if time.time() - claimed_at >= interval / 4:
            claimed_at = time.time()
            if not await store.claim_instance(
                dead, sweeper=sweeper, now=claimed_at, lapse_before=claimed_at - interval / 2
            ):
                logger.info("sweep stopped: the process is alive after all", extra={"instance_id": dead})
                break
        connection = await store.remove(connection_id)
        if connection is not None:
            removed.append(connection)
            await _announce(connection, protocol.LEAVE)
    if not held and await store.forget_instance(dead, stale_before=now):
        logger.info("server process swept", extra={"instance_id": dead})
    return removed


async def instance_retire(*, instance_id: str) -> None:
    """A process that drained removes its own heartbeat: nothing is left to sweep."""
    await get_connection_store().forget_instance(instance_id)


# --- Operating live connections: the admin and the @connections API -----------

# What a person reads when an operator closes their connection.
CLOSED_BY_OPERATOR_MESSAGE = "An operator closed this connection."
# Rooms whose totals one listing counts at most, and how far each count goes.
ROOM_TOTALS_MAX_ROOMS = 50
ROOM_TOTAL_LIMIT = 10_000


async def connection_live(*, connection_id: str) -> Connection:
    """
    The one place that decides whether a connection is live: its registry
    item, held by a server process whose heartbeat is fresh; otherwise
    ``ConnectionGone``. An item left by a dead process is removed when found
    (as the original deletes an item on GoneException) and its room is told.
    Every operator path (get, post, notify, close) comes through here.
    """
    store = get_connection_store()
    connection = await store.get(connection_id)
    if connection is None:
        raise ConnectionGone(connection_id)
    holder = await store.instance(connection.instance_id)
    now = time.time()
    if holder is None:
        # Nothing vouches for it: its process was swept and forgotten. Were that
        # process alive after all, its next heartbeat finds itself forgotten and
        # registers its connections again.
        if await store.remove(connection_id) is not None:
            await _announce(connection, protocol.LEAVE)
        logger.info("stale registry item removed", extra={"connection_id": connection_id})
        raise ConnectionGone(connection_id)
    if holder.stale_at < now:
        # Sweep its process now, through the same claim as every sweeper.
        await _sweep_instance(
            holder.instance_id, sweeper=settings.CHAT_INSTANCE_ID, now=now, interval=settings.CHAT_HEARTBEAT_INTERVAL
        )
        raise ConnectionGone(connection_id)
    return connection


async def connection_get(*, connection_id: str) -> Connection | None:
    """The live connection with this id, or None."""
    try:
        return await connection_live(connection_id=connection_id)
    except ConnectionGone:
        return None


async def connection_post(*, connection_id: str, text: str) -> Connection:
    """PostToConnection: deliver ``text`` to that socket as one text frame, unchanged, whichever process holds it."""
    connection = await connection_live(connection_id=connection_id)
    await get_channel_layer().send(connection.channel_name, socket_frame(connection_id=connection_id, text=text))
    logger.info("frame posted to connection", extra={"connection_id": connection_id, "chars": len(text)})
    return connection


async def connection_notify(*, connection_id: str, message: str) -> Connection:
    """Send the person on this connection a ``system`` notice from the operators."""
    return await connection_post(
        connection_id=connection_id, text=protocol.encode(protocol.system_frame(message=message))
    )


async def connection_close(
    *, connection_id: str, code: int = protocol.CLOSE_BY_OPERATOR, message: str = CLOSED_BY_OPERATOR_MESSAGE
) -> Connection:
    """
    Close a connection from wherever it is held: a ``system`` frame saying
    why, then the close with ``code``. Its own process then runs
    ``$disconnect`` (registry item deleted, room told).
    """
    connection = await connection_notify(connection_id=connection_id, message=message)
    await get_channel_layer().send(connection.channel_name, socket_close(connection_id=connection_id, code=code))
    logger.info("connection closed by operator", extra={"connection_id": connection_id, "code": code})
    return connection


async def connection_touch(*, connection_id: str, moment: str | None = None) -> bool:
    """
    Record activity on a connection (its ``lastActiveAt``). False if it is not
    registered. A failed write is logged, not raised: a stale time is harmless.
    """
    try:
        return await get_connection_store().touch(connection_id, moment or protocol.iso_timestamp())
    except StoreError as error:
        logger.warning("last activity not recorded: %s", error, extra={"connection_id": connection_id})
        return False


async def connections_page(
    *, room: str | None = None, cursor: str | None = None, limit: int = 50, name: str | None = None
) -> Page:
    """
    One page of live connections: a room's through its index (a Query), or
    everyone's (a Scan page). ``cursor`` is the store's, as DynamoDB's
    LastEvaluatedKey. ``name`` keeps the items of this page whose name
    contains it (case-insensitive); like a DynamoDB filter, it applies after
    the page is read, so a page may hold fewer items while more pages follow.
    """
    store = get_connection_store()
    page = await (store.members(room, limit=limit, cursor=cursor) if room else store.scan(limit=limit, cursor=cursor))
    if name:
        needle = name.casefold()
        page = Page([c for c in page.items if needle in c.name.casefold()], page.cursor)
    return page


async def room_totals(*, rooms: list[str], limit: int = ROOM_TOTAL_LIMIT) -> dict[str, int]:
    """
    How many live connections each room has (at most ``limit`` counted per
    room): one index Query with Select=COUNT per room, for at most
    ``ROOM_TOTALS_MAX_ROOMS`` rooms, never a table scan.
    """
    store = get_connection_store()
    chosen = sorted(set(rooms))[:ROOM_TOTALS_MAX_ROOMS]
    counts = await asyncio.gather(*(store.count(room, limit=limit) for room in chosen))
    return dict(zip(chosen, counts, strict=True))
