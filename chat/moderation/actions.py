"""
What operators do to people and rooms, from the ``@messages``, ``@rooms``
and ``@bans`` API and from the admin alike. Each change is written to the
moderation store first, then every process is told to read it again.
"""

import logging
import time
import unicodedata
from collections.abc import Iterable
from typing import Any

from .. import protocol
from ..exceptions import ConnectionGone
from ..services import connection_close, message_delete
from ..stores import Connection, get_connection_store, get_moderation_store
from ..stores.base import Mute, RoomRules
from .rules import moderation_changed, person_keys, until_words

logger = logging.getLogger(__name__)

# Registry pages read at most to find a banned person's connections.
SCAN_PAGES = 200
# Longest mute or ban, in seconds (a year).
LONGEST = 365 * 24 * 3600


def _folded(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().casefold()


async def message_remove(*, room: str, message_id: str) -> dict[str, Any] | None:
    """An operator deletes any message: the same tombstone and ``message_deleted`` as its sender's delete."""
    return await message_delete(room=room, message_id=message_id, operator=True)


async def _room_people(room: str, name: str) -> list[Connection]:
    """The live connections in ``room`` under this name (folded)."""
    wanted, found, cursor = _folded(name), [], None
    for _ in range(SCAN_PAGES):
        page = await get_connection_store().members(room, limit=1000, cursor=cursor)
        found += [c for c in page.items if _folded(c.name) == wanted]
        if (cursor := page.cursor) is None:
            break
    return found


async def person_mute(*, room: str, name: str, seconds: int) -> float:
    """
    Mute a person in ``room`` for ``seconds``: by the name, and by the
    identity of everyone in the room under that name now (so a new name
    does not lift it). Returns when it ends.
    """
    until = time.time() + seconds
    keys = person_keys(name)
    for connection in await _room_people(room, name):
        keys += [key for key in person_keys(connection.name, connection.sender) if key not in keys]
    await get_moderation_store().mute(room, keys, name=name, until=until)
    await moderation_changed(room=room)
    logger.info("person muted", extra={"room": room, "person": name, "seconds": seconds})
    return until


async def person_unmute(*, room: str, name: str) -> bool:
    """Lift the mute made under ``name`` in ``room`` (every key it covered); False if there was none."""
    lifted = await get_moderation_store().unmute(room, name)
    await moderation_changed(room=room)
    logger.info("mute lifted", extra={"room": room, "person": name, "lifted": lifted})
    return lifted


async def person_ban(*, name: str, seconds: int) -> tuple[float, list[Connection]]:
    """
    Ban a person from every room for ``seconds``: by the name and by the
    identities using it now. Their sockets, on every process, get a
    ``system`` frame saying so and close with 4003; their reconnects are
    refused until it ends. Returns when it ends and the connections closed.
    """
    until = time.time() + seconds
    wanted = _folded(name)
    store = get_connection_store()
    everyone, cursor = [], None
    for _ in range(SCAN_PAGES):
        page = await store.scan(limit=1000, cursor=cursor)
        everyone += page.items
        if (cursor := page.cursor) is None:
            break
    tags = {c.sender for c in everyone if _folded(c.name) == wanted and c.sender}
    keys = person_keys(name) + [f"tag:{tag}" for tag in sorted(tags)]
    await get_moderation_store().ban(keys, name=name, until=until)
    await moderation_changed(bans=True)
    closed = []
    words = f"You are banned from this chat {until_words(until)}."
    for connection in everyone:
        if _folded(connection.name) == wanted or connection.sender in tags:
            try:
                closed.append(await connection_close(connection_id=connection.connection_id, message=words))
            except ConnectionGone:
                continue
    logger.info("person banned", extra={"person": name, "seconds": seconds, "closed": len(closed)})
    return until, closed


async def person_unban(*, name: str) -> bool:
    """Lift the ban made under ``name``; False if there was none."""
    lifted = await get_moderation_store().unban(name)
    await moderation_changed(bans=True)
    logger.info("ban lifted", extra={"person": name, "lifted": lifted})
    return lifted


async def room_rules_set(*, room: str, slow_mode: int | None = None, locked: bool | None = None) -> RoomRules:
    """Slow mode (seconds between one person's messages, 0 for off) and the lock of a room."""
    rules = await get_moderation_store().set_rules(room, slow_mode=slow_mode, locked=locked)
    await moderation_changed(room=room)
    logger.info("room rules set", extra={"room": room, "slow_mode": rules.slow_mode, "locked": rules.locked})
    return rules


async def room_rules(*, room: str) -> RoomRules:
    return await get_moderation_store().rules(room)


async def bans_in_force() -> list[dict[str, str]]:
    """The bans not ended yet, by name (as the operator gave it), each with its end: ``[{"name", "until"}]``."""
    return _in_force((await get_moderation_store().bans()).values())


def _in_force(entries: Iterable[Mute]) -> list[dict[str, str]]:
    """Mutes or bans not ended yet, one per name (the latest end), sorted by name."""
    now = time.time()
    ends: dict[str, float] = {}
    for entry in entries:
        if entry.until > now:
            ends[entry.name] = max(ends.get(entry.name, 0), entry.until)
    return [{"name": n, "until": protocol.iso_timestamp_of(u)} for n, u in sorted(ends.items())]


def rules_json(room: str, rules: RoomRules) -> dict[str, Any]:
    """A room's moderation as the API shows it: slow mode, lock, and the mutes in force (by name)."""
    return {
        "room": room,
        "slowModeSeconds": rules.slow_mode,
        "locked": rules.locked,
        "mutes": _in_force(rules.mutes.values()),
    }
