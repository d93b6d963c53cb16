"""
What operators do to live connections, from the admin and the
``@connections`` API: look them up, post to them, close them, list and
count them, whichever server process holds them.
"""

import asyncio
import logging
import time

from channels.layers import get_channel_layer
from django.conf import settings

from .. import protocol
from ..exceptions import ConnectionGone, StoreError
from ..relay import socket_close, socket_frame
from ..stores import Connection, Page, get_connection_store
from .processes import instance_sweep_one
from .rooms import room_announce

logger = logging.getLogger(__name__)

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
            await room_announce(connection, protocol.LEAVE)
        logger.info("stale registry item removed", extra={"connection_id": connection_id})
        raise ConnectionGone(connection_id)
    if holder.stale_at < now:
        # Sweep its process now, through the same claim as every sweeper.
        await instance_sweep_one(
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
