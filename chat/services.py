"""
What users do: connect, send, read history, leave; and what each server
process does for the others: heartbeats, and sweeping up after a process
that died. The consumer, the admin, management commands and the
``@connections`` API all come through here; none of them reaches around
these functions into the stores or the channel layer.
"""

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from . import protocol
from .exceptions import ConnectionExists, StoreError
from .relay import Member, get_room_relay, room_event, room_group
from .stores import Connection, get_connection_store, get_message_store

logger = logging.getLogger(__name__)

# How many members one welcome frame lists at most.
WELCOME_MEMBERS_LIMIT = 1000
# Seconds a message waits for its history write before it is sent regardless.
HISTORY_WRITE_TIMEOUT = 2.0
# A heartbeat promises life for this many heartbeat intervals.
STALE_AFTER_INTERVALS = 1.25


def connection_new(
    *, connection_id: str, channel_name: str, room: str, name: str, source_ip: str, user_agent: str
) -> Connection:
    """A connection record as ``$connect`` registers it."""
    return Connection(
        connection_id=connection_id,
        channel_name=channel_name,
        room=room,
        name=name,
        connected_at=protocol.iso_timestamp(),
        instance_id=settings.CHAT_INSTANCE_ID,
        source_ip=source_ip,
        user_agent=user_agent,
        expires_at=int(time.time()) + settings.CHAT_CONNECTION_TTL,
    )


async def connection_register(
    *, connection: Connection, member: Member, since: str | None = None
) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """
    ``$connect``: record the connection, subscribe its socket to the room and
    tell the room. Returns the members and the history for the welcome frame:
    the latest messages, or with ``since`` every message after that id (up to
    the recovery limit). Live messages wait in ``member`` until it is ready,
    so none falls between the history and the live stream. On any failure
    nothing stays registered and the error propagates.
    """
    store = get_connection_store()
    await store.add(connection)
    relay = get_room_relay()
    try:
        await relay.join(connection.room, member)
        page = await store.members(connection.room, limit=WELCOME_MEMBERS_LIMIT)
        if since:
            history, _ = await get_message_store().after(connection.room, since, limit=settings.CHAT_RECOVERY_LIMIT)
        else:
            history = await get_message_store().latest(connection.room, limit=settings.CHAT_HISTORY_LIMIT)
    except BaseException:
        await relay.leave(connection.room, connection.connection_id)
        await store.remove(connection.connection_id)
        raise
    members = [protocol.member(c.connection_id, c.name) for c in page.items]
    if not any(m["connectionId"] == connection.connection_id for m in members):
        # The room index is eventually consistent on AWS: our own item may lag.
        members.append(protocol.member(connection.connection_id, connection.name))
    await room_send(
        room=connection.room,
        frame=protocol.presence_frame(
            event=protocol.JOIN, connection_id=connection.connection_id, name=connection.name, room=connection.room
        ),
        exclude=connection.connection_id,
    )
    logger.info("connection registered", extra={"connection_id": connection.connection_id, "room": connection.room})
    return members, history


async def connection_disconnect(*, connection: Connection) -> None:
    """``$disconnect``: unsubscribe the socket, forget the connection, tell the room."""
    try:
        await get_room_relay().leave(connection.room, connection.connection_id)
    finally:
        removed = await get_connection_store().remove(connection.connection_id)
    if removed is not None:  # otherwise a sweep already told the room
        await _announce_leave(connection)
    logger.info("connection removed", extra={"connection_id": connection.connection_id, "room": connection.room})


async def message_broadcast(*, sender: Connection, text: str) -> dict[str, Any]:
    """
    ``sendMessage``: store the message, then send it to everyone in the
    sender's room, the sender included. Stored first, so a client that
    recovers from the history never misses what was delivered live. If the
    history cannot be written in time, the message still goes out live.
    """
    frame = protocol.message_frame(
        message_id=protocol.new_message_id(),
        room=sender.room,
        connection_id=sender.connection_id,
        name=sender.name,
        text=text,
        sent_at=protocol.iso_timestamp(),
    )
    expires_at = int(time.time()) + settings.CHAT_HISTORY_RETENTION
    try:
        await asyncio.wait_for(get_message_store().append(frame, expires_at=expires_at), HISTORY_WRITE_TIMEOUT)
    except (StoreError, TimeoutError) as error:
        logger.warning("message not stored in history: %s", error or "timed out", extra={"room": sender.room})
    await room_send(room=sender.room, frame=frame, message_id=frame["id"])
    return frame


async def history_before(*, room: str, before: str) -> dict[str, Any]:
    """The ``history`` action: the page of messages just before ``before``."""
    messages, more = await get_message_store().before(room, before, limit=settings.CHAT_HISTORY_LIMIT)
    return protocol.history_frame(messages=messages, more=more)


async def room_send(*, room: str, frame: dict, exclude: str | None = None, message_id: str | None = None) -> None:
    """Encode a frame once and hand it to every process holding members of ``room``."""
    event = room_event(room=room, text=protocol.encode(frame), exclude=exclude, message_id=message_id)
    await get_channel_layer().group_send(room_group(room), event)


async def _announce_leave(connection: Connection) -> None:
    await room_send(
        room=connection.room,
        frame=protocol.presence_frame(
            event=protocol.LEAVE, connection_id=connection.connection_id, name=connection.name, room=connection.room
        ),
    )


# --- Server processes ----------------------------------------------------------


async def instance_heartbeat(*, instance_id: str, interval: float, held: Iterable[Connection] = ()) -> bool:
    """
    Record that this process is alive for another ``interval``. If its
    heartbeat had been swept (it was too slow to beat, and taken for dead),
    put back the registry items of the connections it still ``held``.
    Returns whether the heartbeat was on record.
    """
    now = time.time()
    known = await get_connection_store().heartbeat(
        instance_id,
        at=now,
        stale_at=now + interval * STALE_AFTER_INTERVALS,
        expires_at=int(now + max(settings.CHAT_CONNECTION_TTL, interval * 10)),
    )
    held = list(held)
    if not known and held:
        logger.warning("heartbeat had been swept; registering connections again", extra={"count": len(held)})
        for connection in held:
            try:
                await get_connection_store().add(connection)
            except ConnectionExists:
                pass
    return known


async def instance_sweep(*, instance_id: str) -> list[Connection]:
    """
    Remove the connections of every server process whose heartbeat is stale,
    and tell their rooms they left. A process's heartbeat is forgotten once
    a sweep finds nothing left of it. Returns the connections removed here.
    """
    store = get_connection_store()
    now = time.time()
    removed: list[Connection] = []
    for instance in await store.instances():
        if instance.instance_id == instance_id or instance.stale_at > now:
            continue
        held = await store.held_by(instance.instance_id)
        for connection_id in held:
            connection = await store.remove(connection_id)
            if connection is not None:  # another sweeper may have got there first
                removed.append(connection)
                await _announce_leave(connection)
        if not held and await store.forget_instance(instance.instance_id):
            logger.info("server process swept", extra={"instance_id": instance.instance_id})
    if removed:
        logger.warning("swept connections of dead server processes", extra={"count": len(removed)})
    return removed
