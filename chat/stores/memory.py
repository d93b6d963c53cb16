"""
A connection store in this process's memory, for a run with no DynamoDB.
It sees only the connections of this one process: fine on a laptop, wrong
for more than one server.
"""

import bisect
import dataclasses
import time
from typing import Any

from .. import protocol
from .base import (
    PENDING_SEND_LAPSE,
    SEND_PENDING,
    Connection,
    ConnectionExists,
    ConnectionStore,
    Instance,
    MessageStore,
    ModerationStore,
    Mute,
    Page,
    RoomRules,
    StoreError,
    TooManyReactions,
    UnknownMessage,
)


class MemoryConnectionStore(ConnectionStore):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._connections: dict[str, Connection] = {}  # in insertion order
        self._instances: dict[str, Instance] = {}

    async def add(self, connection: Connection) -> None:
        if connection.connection_id in self._connections:
            raise ConnectionExists(connection.connection_id)
        self._connections[connection.connection_id] = connection

    async def remove(self, connection_id: str) -> Connection | None:
        return self._connections.pop(connection_id, None)

    async def get(self, connection_id: str) -> Connection | None:
        return self._connections.get(connection_id)

    async def members(self, room: str, *, limit: int = 1000, cursor: str | None = None) -> Page:
        return self._page([c for c in self._connections.values() if c.room == room], limit, cursor)

    async def scan(self, *, limit: int = 100, cursor: str | None = None) -> Page:
        return self._page(list(self._connections.values()), limit, cursor)

    async def remove_many(self, connection_ids: list[str]) -> None:
        for connection_id in connection_ids:
            self._connections.pop(connection_id, None)

    async def heartbeat(
        self,
        instance_id: str,
        *,
        beat: int,
        at: float,
        stale_at: float,
        expires_at: int,
        rooms: dict[str, int] | None = None,
    ) -> bool:
        known = self._instances.get(instance_id)
        if known is not None and known.beat >= beat:
            return True
        kept = known.rooms if known is not None and rooms is None else dict(rooms or {})
        self._instances[instance_id] = Instance(instance_id, at, stale_at, rooms=kept, beat=beat)
        return known is not None and not known.swept_by

    async def claim_instance(self, instance_id: str, *, sweeper: str, now: float, lapse_before: float) -> bool:
        known = self._instances.get(instance_id)
        if known is None or known.stale_at >= now:
            return False
        if known.swept_by and known.swept_by != sweeper and known.swept_at >= lapse_before:
            return False
        self._instances[instance_id] = dataclasses.replace(known, swept_by=sweeper, swept_at=now)
        return True

    async def instance(self, instance_id: str) -> Instance | None:
        return self._instances.get(instance_id)

    async def instances(self) -> list[Instance]:
        return list(self._instances.values())

    async def forget_instance(self, instance_id: str, *, stale_before: float | None = None) -> bool:
        known = self._instances.get(instance_id)
        if known is None or (stale_before is not None and known.stale_at >= stale_before):
            return False
        del self._instances[instance_id]
        return True

    async def held_by(self, instance_id: str) -> list[str]:
        return [c.connection_id for c in self._connections.values() if c.instance_id == instance_id]

    async def touch(self, connection_id: str, last_active_at: str) -> bool:
        connection = self._connections.get(connection_id)
        if connection is None:
            return False
        self._connections[connection_id] = dataclasses.replace(connection, last_active_at=last_active_at)
        return True

    async def count(self, room: str, *, limit: int = 10_000) -> int:
        return min(limit, sum(1 for c in self._connections.values() if c.room == room))

    @staticmethod
    def _page(items: list[Connection], limit: int, cursor: str | None) -> Page:
        if cursor and not cursor.isdigit():
            raise StoreError(f"cursor {cursor[:40]!r} is not one this store gave out")
        start = int(cursor) if cursor else 0
        end = start + limit
        return Page(items=items[start:end], cursor=str(end) if end < len(items) else None)


class MemoryMessageStore(MessageStore):
    """Room history in this process's memory, kept until it expires."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._rooms: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}  # (seq, expires_at, frame), by seq
        self._seqs: dict[str, int] = {}
        self._sends: dict[str, tuple[int, int, float]] = {}  # key -> (seq or SEND_PENDING, expires_at, claimed at)
        self._reactors: dict[tuple[str, int], dict[str, list[str]]] = {}  # (room, seq) -> emoji -> who, in order

    def _live(self, room: str) -> list[tuple[int, int, dict[str, Any]]]:
        now = int(time.time())
        entries = self._rooms.get(room, [])
        if entries and entries[0][1] <= now:
            entries[:] = [e for e in entries if e[1] > now]
        return entries

    async def next_seq(self, room: str) -> int:
        self._seqs[room] = self._seqs.get(room, 0) + 1
        return self._seqs[room]

    async def append(self, message: dict[str, Any], *, expires_at: int) -> None:
        entries = self._rooms.setdefault(message["room"], [])
        bisect.insort(entries, (message["seq"], expires_at, dict(message)), key=lambda e: e[0])

    def _entry(self, room: str, seq: int) -> tuple[int, int, dict[str, Any]] | None:
        entries = self._live(room)
        index = bisect.bisect_left(entries, seq, key=lambda e: e[0])
        return entries[index] if index < len(entries) and entries[index][0] == seq else None

    async def get(self, room: str, seq: int) -> dict[str, Any] | None:
        entry = self._entry(room, seq)
        return dict(entry[2]) if entry else None

    async def seq_by_id(self, room: str, message_id: str, *, inclusive: bool) -> int:
        below = [
            e
            for e in self._live(room)
            if "id" in e[2] and (e[2]["id"] < message_id or (inclusive and e[2]["id"] == message_id))
        ]
        return max(below, key=lambda e: e[2]["id"])[0] if below else 0

    async def latest(self, room: str, *, limit: int) -> list[dict[str, Any]]:
        return [dict(e[2]) for e in self._live(room)[-limit:]] if limit > 0 else []

    async def after(self, room: str, seq: int, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
        entries = self._live(room)
        start = bisect.bisect_right(entries, seq, key=lambda e: e[0])
        found = entries[start : start + limit]
        return [dict(e[2]) for e in found], start + limit < len(entries)

    async def before(self, room: str, seq: int, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
        entries = self._live(room)
        end = bisect.bisect_left(entries, seq, key=lambda e: e[0])
        start = max(0, end - limit)
        return [dict(e[2]) for e in entries[start:end]], start > 0

    async def find(self, room: str, message_id: str) -> dict[str, Any] | None:
        for entry in self._live(room):
            if entry[2].get("id") == message_id:
                return dict(entry[2])
        return None

    def _message(self, room: str, seq: int) -> dict[str, Any]:
        entry = self._entry(room, seq)
        if entry is None or not protocol.is_message(entry[2]) or entry[2].get("deleted"):
            raise UnknownMessage(f"no message {seq} in {room}")
        return entry[2]

    async def react(self, room: str, seq: int, *, emoji: str, who: str, limit: int) -> tuple[dict[str, Any], bool]:
        message = self._message(room, seq)
        reactions = self._reactors.setdefault((room, seq), {})
        people = reactions.setdefault(emoji, [])
        added = who not in people
        if added:
            if sum(who in others for others in reactions.values()) >= limit:
                raise TooManyReactions(f"{limit} reactions on message {seq} in {room}")
            people.append(who)
        else:
            people.remove(who)
            if not people:
                del reactions[emoji]
        message["reactions"] = {e: len(p) for e, p in reactions.items()}
        message["version"] = message.get("version", 1) + 1
        return dict(message), added

    async def edit(self, room: str, seq: int, *, text: str, edited_at: str) -> dict[str, Any]:
        message = self._message(room, seq)
        message.update(message=text, editedAt=edited_at, version=message.get("version", 1) + 1)
        return dict(message)

    async def delete(self, room: str, seq: int) -> dict[str, Any] | None:
        entry = self._entry(room, seq)
        if entry is not None and entry[2].get("deleted"):
            return None
        message = self._message(room, seq)
        self._reactors.pop((room, seq), None)
        tombstone = protocol.tombstone(message, version=message.get("version", 1) + 1)
        message.clear()
        message.update(tombstone)
        return dict(tombstone)

    async def claim_send(self, key: str, *, expires_at: int) -> int | None:
        now = time.time()
        known = self._sends.get(key)
        if (
            known is not None
            and known[1] > now
            and not (known[0] == SEND_PENDING and known[2] < now - PENDING_SEND_LAPSE)
        ):
            return known[0]
        self._sends[key] = (SEND_PENDING, expires_at, now)
        return None

    async def claimed(self, key: str) -> bool:
        known = self._sends.get(key)
        return known is not None and known[1] > time.time()

    async def settle_send(self, key: str, seq: int) -> None:
        if key in self._sends:
            self._sends[key] = (seq, *self._sends[key][1:])


class MemoryModerationStore(ModerationStore):
    """Moderation in this process's memory: enforced by this one process only."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._rules: dict[str, RoomRules] = {}
        self._bans: dict[str, Mute] = {}
        self._turns: dict[tuple[str, str], float] = {}

    async def rules(self, room: str) -> RoomRules:
        return self._rules.get(room, RoomRules())

    async def set_rules(self, room: str, *, slow_mode: int | None = None, locked: bool | None = None) -> RoomRules:
        now = self._rules.get(room, RoomRules())
        changes = {k: v for k, v in (("slow_mode", slow_mode), ("locked", locked)) if v is not None}
        self._rules[room] = dataclasses.replace(now, **changes)
        return self._rules[room]

    async def mute(self, room: str, keys: list[str], *, name: str, until: float) -> None:
        now = self._rules.get(room, RoomRules())
        kept = {key: mute for key, mute in now.mutes.items() if mute.until > time.time()}
        self._rules[room] = dataclasses.replace(now, mutes={**kept, **dict.fromkeys(keys, Mute(name, until))})

    async def unmute(self, room: str, name: str) -> bool:
        now = self._rules.get(room, RoomRules())
        kept = {key: mute for key, mute in now.mutes.items() if mute.name.casefold() != name.casefold()}
        self._rules[room] = dataclasses.replace(now, mutes=kept)
        return len(kept) < len(now.mutes)

    async def bans(self) -> dict[str, Mute]:
        return dict(self._bans)

    async def ban(self, keys: list[str], *, name: str, until: float) -> None:
        now = time.time()
        self._bans = {key: ban for key, ban in self._bans.items() if ban.until > now}
        self._bans.update(dict.fromkeys(keys, Mute(name, until)))

    async def unban(self, name: str) -> bool:
        kept = {key: ban for key, ban in self._bans.items() if ban.name.casefold() != name.casefold()}
        lifted, self._bans = len(kept) < len(self._bans), kept
        return lifted

    async def take_turn(self, room: str, who: str, *, seconds: int, now: float) -> float | None:
        last = self._turns.get((room, who))
        if last is not None and last > now - seconds:
            return last + seconds
        self._turns[room, who] = now
        return None
