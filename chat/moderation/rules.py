"""
The moderation in force, as one server process reads it, and the checks
made against it. Decisions live in the moderation store (DynamoDB), so every
process enforces the same; each process keeps what it read for at most
``CACHE_SECONDS``, and drops it at once when a ``moderation.changed`` event
reaches it through the channel layer (every process's relay listens).
"""

import asyncio
import logging
import time
import unicodedata
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from channels.layers import get_channel_layer

from .. import protocol
from ..relay import CONTROL_GROUP, get_room_relay
from ..stores import get_moderation_store
from ..stores.base import Mute, RoomRules

logger = logging.getLogger(__name__)

# The event, sent to every process's relay, that says something changed.
MODERATION_CHANGED = "moderation.changed"
# Longest a process acts on what it read, should a change event be lost.
CACHE_SECONDS = 5.0


def person_keys(name: str, tag: str = "") -> list[str]:
    """The keys a person is muted or banned by: their display name (folded), and their identity's tag."""
    keys = [f"name:{unicodedata.normalize('NFKC', name).strip().casefold()}"]
    if tag:
        keys.append(f"tag:{tag}")
    return keys


def until_words(until: float) -> str:
    """``until 14:05 UTC`` (with the date when it is not today)."""
    moment = datetime.fromtimestamp(until, UTC)
    if moment.date() == datetime.now(UTC).date():
        return f"until {moment:%H:%M} UTC"
    return f"until {moment:%Y-%m-%d %H:%M} UTC"


class ModerationCache:
    """
    What this process last read of the rooms' rules and of the bans, and
    when. One read of a thing is on its way at a time: the callers that
    come while it is share it (a storm of connects after the bans lapsed
    makes one ``GetItem``, not one each). A change event forgets what was
    read and what is being read, so a read that started before a change is
    not kept.
    """

    def __init__(self) -> None:
        self._rules: dict[str, tuple[float, RoomRules]] = {}
        self._bans: tuple[float, dict[str, Mute]] | None = None
        self._reading: dict[str | None, asyncio.Future] = {}  # room (None: the bans) -> the read on its way
        self._changes = 0

    def changed(self, event: dict) -> None:
        """A ``moderation.changed`` event: forget the room it names (or everything)."""
        self._changes += 1
        room = event.get("room")
        if room:
            self._rules.pop(room, None)
            self._reading.pop(room, None)
        else:
            self._rules.clear()
            self._reading = {key: read for key, read in self._reading.items() if key is None}
        if event.get("bans"):
            self._bans = None
            self._reading.pop(None, None)

    async def rules(self, room: str) -> RoomRules:
        cached = self._rules.get(room)
        if cached is None or time.monotonic() - cached[0] > CACHE_SECONDS:
            return await self._shared(room, self._read_rules)
        return cached[1]

    async def bans(self) -> dict[str, Mute]:
        if self._bans is None or time.monotonic() - self._bans[0] > CACHE_SECONDS:
            return await self._shared(None, self._read_bans)
        return self._bans[1]

    def _shared(self, key: str | None, read: Callable[[str | None, int], Awaitable[Any]]) -> Awaitable[Any]:
        """The read of ``key`` on its way, or a new one; a caller that gives up does not stop it for the rest."""
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = asyncio.ensure_future(read(key, self._changes))

            def done(future: asyncio.Future) -> None:
                if self._reading.get(key) is future:
                    del self._reading[key]
                if not future.cancelled():
                    future.exception()  # retrieved: its callers re-raise it

            reading.add_done_callback(done)
        return asyncio.shield(reading)

    async def _read_rules(self, room: str, changes: int) -> RoomRules:
        at = time.monotonic()
        rules = await get_moderation_store().rules(room)
        if changes == self._changes:
            self._rules[room] = (at, rules)
            if len(self._rules) > 10_000:
                self._rules = {r: c for r, c in self._rules.items() if at - c[0] <= CACHE_SECONDS}
        return rules

    async def _read_bans(self, _: None, changes: int) -> dict[str, Mute]:
        at = time.monotonic()
        bans = await get_moderation_store().bans()
        if changes == self._changes:
            self._bans = (at, bans)
        return bans


_caches: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ModerationCache]" = weakref.WeakKeyDictionary()


def get_moderation_cache() -> ModerationCache:
    """This process's cache; the room relay feeds it the change events (see ``chat.relay``)."""
    loop = asyncio.get_running_loop()
    cache = _caches.get(loop)
    if cache is None:
        cache = _caches[loop] = ModerationCache()
        get_room_relay().listen(MODERATION_CHANGED, cache.changed)
    return cache


async def moderation_changed(*, room: str | None = None, bans: bool = False) -> None:
    """Tell every process to read the moderation of ``room`` (or of every room), and the bans, again."""
    get_moderation_cache().changed({"room": room, "bans": bans})
    try:
        await get_channel_layer().group_send(CONTROL_GROUP, {"type": MODERATION_CHANGED, "room": room, "bans": bans})
    except Exception:
        # The others read it again within CACHE_SECONDS anyway.
        logger.warning("moderation change not published", exc_info=True, extra={"room": room})


async def ban_refusal(*, name: str, tag: str) -> str | None:
    """At connect: a sentence saying why this person may not chat, or None."""
    now = time.time()
    bans = await get_moderation_cache().bans()
    ends = [bans[key].until for key in person_keys(name, tag) if key in bans and bans[key].until > now]
    if not ends:
        return None
    return f"You are banned from this chat {until_words(max(ends))}."


async def send_refusal(
    *,
    room: str,
    name: str,
    tag: str,
    counts_turn: bool = True,
    resend: Callable[[], Awaitable[bool]] | None = None,
) -> tuple[str, str] | None:
    """
    Before a message is sent (or changed): ``(error code, sentence)`` when
    the room is locked, the person is muted there, or slow mode says not
    yet; None when it may go. With ``counts_turn``, a send that may go uses
    the person's turn in slow mode, unless ``resend()`` says it is one sent
    already (the same clientMessageId again: it gets its original back).
    """
    rules = await get_moderation_cache().rules(room)
    if rules.locked:
        return protocol.ROOM_LOCKED, f"#{room} is locked: it can be read, but nobody can send."
    now = time.time()
    muted = rules.muted_until(person_keys(name, tag), now)
    if muted is not None:
        return protocol.MUTED, f"You are muted in #{room} {until_words(muted)}."
    if rules.slow_mode and counts_turn and not (resend is not None and await resend()):
        again = await get_moderation_store().take_turn(room, tag, seconds=rules.slow_mode, now=now)
        if again is not None:
            wait = max(1, round(again - now))
            return protocol.SLOW_MODE, (
                f"#{room} is in slow mode: one message every {rules.slow_mode} s. You can send again in {wait} s."
            )
    return None
