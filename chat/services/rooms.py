"""
A room as every process of it sees it: one encoded frame handed to all of
them, the roster and recent messages a process seeds a room with, and the
joins and leaves announced to it.
"""

import asyncio
import logging
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from .. import protocol
from ..relay import room_event, room_group
from ..stores import Connection, get_connection_store, get_message_store

logger = logging.getLogger(__name__)

# Pages of 1,000 read at most to seed a room's roster in a process.
ROSTER_PAGES = 100


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


async def room_announce(connection: Connection, event: str) -> None:
    """Tell the connection's room it joined or left (a join goes to everyone else)."""
    frame = protocol.presence_frame(
        event=event, connection_id=connection.connection_id, name=connection.name, room=connection.room
    )
    exclude = connection.connection_id if event == protocol.JOIN else None
    await room_send(room=connection.room, frame=frame, exclude=exclude)
