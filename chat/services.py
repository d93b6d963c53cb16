"""
What users do: connect, send, leave. The consumer, the admin, management
commands and the ``@connections`` API all come through here; none of them
reaches around these functions into the store or the channel layer.
"""

import asyncio
import logging
import time

from channels.layers import get_channel_layer
from django.conf import settings

from . import protocol
from .exceptions import ConnectionGone, StoreError
from .relay import Member, get_room_relay, room_event, room_group
from .stores import Connection, Page, get_connection_store

logger = logging.getLogger(__name__)

# How many members one welcome frame lists at most.
WELCOME_MEMBERS_LIMIT = 1000


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


async def connection_register(*, connection: Connection, member: Member) -> list[dict[str, str]]:
    """
    ``$connect``: record the connection, subscribe its socket to the room and
    tell the room. Returns the room's members for the welcome frame. On any
    failure nothing stays registered and the error propagates.
    """
    store = get_connection_store()
    await store.add(connection)
    relay = get_room_relay()
    try:
        await relay.join(connection.room, member)
        page = await store.members(connection.room, limit=WELCOME_MEMBERS_LIMIT)
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
    return members


async def connection_disconnect(*, connection: Connection) -> None:
    """``$disconnect``: unsubscribe the socket, forget the connection, tell the room."""
    try:
        await get_room_relay().leave(connection.room, connection.connection_id)
    finally:
        await get_connection_store().remove(connection.connection_id)
    await room_send(
        room=connection.room,
        frame=protocol.presence_frame(
            event=protocol.LEAVE, connection_id=connection.connection_id, name=connection.name, room=connection.room
        ),
    )
    logger.info("connection removed", extra={"connection_id": connection.connection_id, "room": connection.room})


async def message_broadcast(*, sender: Connection, text: str) -> dict:
    """``sendMessage``: one message frame to everyone in the sender's room, the sender included."""
    frame = protocol.message_frame(
        message_id=protocol.new_message_id(),
        room=sender.room,
        connection_id=sender.connection_id,
        name=sender.name,
        text=text,
        sent_at=protocol.iso_timestamp(),
    )
    await room_send(room=sender.room, frame=frame)
    return frame


async def room_send(*, room: str, frame: dict, exclude: str | None = None) -> None:
    """Encode a frame once and hand it to every process holding members of ``room``."""
    event = room_event(room=room, text=protocol.encode(frame), exclude=exclude)
    await get_channel_layer().group_send(room_group(room), event)


# --- Operating live connections: the admin and the @connections API -----------

# What a person reads when an operator closes their connection.
CLOSED_BY_OPERATOR_MESSAGE = "An operator closed this connection."
# Rooms whose totals one listing counts at most, and how far each count goes.
ROOM_TOTALS_MAX_ROOMS = 50
ROOM_TOTAL_LIMIT = 10_000


async def connection_live(*, connection_id: str) -> Connection:
    """
    The one place that decides whether a connection is live: its registry
    item, or ``ConnectionGone``. Every operator path (get, post, notify,
    close) comes through here.
    """
    connection = await get_connection_store().get(connection_id)
    if connection is None:
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
    await get_channel_layer().send(connection.channel_name, {"type": "chat.frame", "text": text})
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
    await get_channel_layer().send(connection.channel_name, {"type": "chat.close", "code": code})
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
