"""
A room as every process of it sees it: one encoded frame handed to all of
them, the roster and recent messages a process seeds a room with, and the
joins and leaves announced to it.
"""

import asyncio
import logging
import time
import weakref
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from .. import metrics, protocol
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
        room=room,
        text=protocol.encode(frame),
        exclude=exclude,
        message_id=message_id,
        seq=seq,
        presence=presence,
        at=time.time(),
    )
    try:
        await get_channel_layer().group_send(room_group(room), event)
    except Exception:
        metrics.CHANNEL_LAYER_ERRORS.inc()
        raise


def recent_items() -> int:
    """
    How much of a room's stream a process keeps and a first welcome reads:
    twice the welcome's messages, so that events about them (reactions,
    edits) in between still leave a full welcome most of the time.
    """
    return 2 * settings.CHAT_HISTORY_LIMIT


async def room_seed(room: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """What a process needs to serve a room it joins: its roster and its latest messages and events."""
    roster, recent = await asyncio.gather(room_roster(room), get_message_store().latest(room, limit=recent_items()))
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


# Rooms the directory lists at most, and how long one process reuses its listing (seconds).
DIRECTORY_ROOMS = 100
DIRECTORY_CACHE_SECONDS = 5.0


class RoomDirectory:
    """
    The rooms with people in them now, busiest first, with their counts.
    Which rooms: those the fresh heartbeats of every process report serving
    (plus this process's own, at once). How many: the registry's count of
    each (an index Query with Select=COUNT, never a table scan). A listing
    is reused for ``DIRECTORY_CACHE_SECONDS``, so requests cost nothing more.
    """

    def __init__(self) -> None:
        self._listing: list[dict[str, Any]] = []
        self._made_at = float("-inf")
        self._making: asyncio.Lock | None = None

    async def listing(self) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        if loop.time() - self._made_at < DIRECTORY_CACHE_SECONDS:
            return self._listing
        self._making = self._making or asyncio.Lock()
        async with self._making:
            if loop.time() - self._made_at >= DIRECTORY_CACHE_SECONDS:
                self._listing = await self._make()
                self._made_at = loop.time()
        return self._listing

    @staticmethod
    async def _make() -> list[dict[str, Any]]:
        from ..relay import get_room_relay

        reported: dict[str, int] = dict(get_room_relay().served_rooms())
        now = time.time()
        for instance in await get_connection_store().instances():
            if instance.stale_at >= now and instance.instance_id != settings.CHAT_INSTANCE_ID:
                for room, count in instance.rooms.items():
                    reported[room] = reported.get(room, 0) + count
        busiest = sorted(reported, key=lambda room: (-reported[room], room))[:DIRECTORY_ROOMS]
        counts = await asyncio.gather(*(get_connection_store().count(room) for room in busiest))
        rooms = [{"room": room, "count": count} for room, count in zip(busiest, counts, strict=True) if count]
        return sorted(rooms, key=lambda entry: (-entry["count"], entry["room"]))


_directories: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RoomDirectory]" = weakref.WeakKeyDictionary()


async def room_directory(*, search: str = "") -> list[dict[str, Any]]:
    """The room directory (``RoomDirectory``), less the rooms whose names do not contain ``search``."""
    loop = asyncio.get_running_loop()
    directory = _directories.get(loop)
    if directory is None:
        directory = _directories[loop] = RoomDirectory()
    rooms = await directory.listing()
    needle = search.strip().casefold()
    return [entry for entry in rooms if needle in entry["room"].casefold()] if needle else rooms
