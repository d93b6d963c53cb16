"""
The connection store interface: where live connections are recorded so that
any server process can find who is in a room and which channel reaches them.
"""

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from ..exceptions import (
    ConditionFailed,
    ConnectionExists,
    StoreError,
    StoreUnavailable,
    TooManyReactions,
    UnknownMessage,
)

__all__ = [
    "PENDING_SEND_LAPSE",
    "SEND_PENDING",
    "ConditionFailed",
    "Connection",
    "ConnectionExists",
    "ConnectionStore",
    "Instance",
    "MessageStore",
    "ModerationStore",
    "Mute",
    "Page",
    "RoomRules",
    "StoreError",
    "StoreUnavailable",
    "TooManyReactions",
    "UnknownMessage",
]


@dataclass(frozen=True, slots=True)
class Connection:
    """One live WebSocket, as the registry records it."""

    connection_id: str
    channel_name: str
    room: str
    name: str
    connected_at: str  # ISO 8601, UTC
    instance_id: str
    source_ip: str
    user_agent: str
    expires_at: int  # epoch seconds; the table's TTL attribute
    last_active_at: str = ""  # ISO 8601, UTC; empty means connected_at
    sender: str = ""  # the sender tag of who is on it (protocol.sender_tag), for moderation by person

    def __post_init__(self) -> None:
        if not self.last_active_at:
            object.__setattr__(self, "last_active_at", self.connected_at)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Page:
    """Connections in store order, and the cursor of the next page (None at the end)."""

    items: list[Connection]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class Instance:
    """A server process, as its last heartbeat recorded it."""

    instance_id: str
    heartbeat_at: float  # epoch seconds
    stale_at: float  # epoch seconds after which, without a newer heartbeat, it is taken for dead
    swept_by: str = ""  # the sweeper that claimed it, if one has
    swept_at: float = 0.0  # epoch seconds of that claim
    rooms: dict[str, int] = field(default_factory=dict)  # the rooms it serves -> its sockets there
    beat: int = 0  # grows with each of its heartbeats


def _no_options(store: object, options: dict[str, Any], setting: str) -> None:
    if options:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"{type(store).__name__} takes no option {', '.join(sorted(options))}: fix {setting}['OPTIONS']."
        )


class ConnectionStore(ABC):
    """
    A registry of live connections. Every method is a coroutine and must not
    block the event loop. Failures surface as the errors in
    ``chat.exceptions``, never as a backend's own types.
    """

    def __init__(self, **options: Any) -> None:
        _no_options(self, options, "CHAT_CONNECTION_STORE")

    @abstractmethod
    async def add(self, connection: Connection) -> None:
        """Record a connection; ``ConnectionExists`` if its id is taken."""

    async def register(self, connection: Connection) -> None:
        """
        Record a new connection whose id was just made
        (``protocol.new_connection_id``: 96 random bits, so no live
        connection has it). Unlike ``add``, nothing checks that the id is
        free, so a backend may write several registrations at once.
        """
        await self.add(connection)

    @abstractmethod
    async def remove(self, connection_id: str) -> Connection | None:
        """Forget a connection and return what was recorded (None if nothing)."""

    @abstractmethod
    async def get(self, connection_id: str) -> Connection | None:
        """The recorded connection, or None."""

    @abstractmethod
    async def members(self, room: str, *, limit: int = 1000, cursor: str | None = None) -> Page:
        """One page of the connections in ``room``, oldest first, without a full scan."""

    @abstractmethod
    async def scan(self, *, limit: int = 100, cursor: str | None = None) -> Page:
        """One page of all connections, in no particular order."""

    @abstractmethod
    async def touch(self, connection_id: str, last_active_at: str) -> bool:
        """Record when the connection was last active; False (and nothing written) if it is not recorded."""

    @abstractmethod
    async def count(self, room: str, *, limit: int = 10_000) -> int:
        """How many connections ``room`` has, counting no further than ``limit``; no full scan."""

    async def ensure_tables(self) -> list[str]:
        """Create whatever the store needs; return what was created. Idempotent."""
        return []

    async def ping(self) -> None:
        """Return when the store answers; ``StoreUnavailable`` otherwise."""
        return None

    async def close(self) -> None:
        """Release threads and sockets."""
        return None

    # --- Server processes ------------------------------------------------------
    # Each process records a heartbeat; a process whose heartbeat goes stale
    # died without running $disconnect, and its connections are swept.

    @abstractmethod
    async def remove_many(self, connection_ids: list[str]) -> None:
        """Forget these connections, in as few calls as the backend allows (a draining process)."""

    @abstractmethod
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
        """
        Record that ``instance_id`` is alive until ``stale_at``, dropping any
        sweeper's claim, with the ``rooms`` it serves (name -> its sockets
        there) when given. True if its heartbeat was on record and unclaimed:
        False means a sweep may have removed its connections.

        ``beat`` grows with each heartbeat of a process. One not above the
        last recorded (a write held up in the network that lands after a
        later one) changes nothing, so it cannot turn a process stale again
        and get it swept; it returns True.
        """

    @abstractmethod
    async def claim_instance(self, instance_id: str, *, sweeper: str, now: float, lapse_before: float) -> bool:
        """
        Claim a stale process for ``sweeper`` to sweep: True only if its
        heartbeat is still stale at ``now`` and no other sweeper holds a claim
        made after ``lapse_before``. A sweeper may renew its own claim.
        """

    @abstractmethod
    async def instance(self, instance_id: str) -> Instance | None:
        """One server process's last heartbeat, or None."""

    @abstractmethod
    async def instances(self) -> list[Instance]:
        """Every server process with a heartbeat on record."""

    @abstractmethod
    async def forget_instance(self, instance_id: str, *, stale_before: float | None = None) -> bool:
        """
        Remove a process's heartbeat; True if this call removed it. With
        ``stale_before``, only if it is stale by then: a heartbeat refreshed
        meanwhile stays.
        """

    @abstractmethod
    async def held_by(self, instance_id: str) -> list[str]:
        """Ids of the connections recorded as held by ``instance_id``."""


# What ``MessageStore.claim_send`` answers while the first send of a
# clientMessageId has not been given its seq yet.
SEND_PENDING = 0
PENDING_SEND_LAPSE = 10.0


class MessageStore(ABC):
    """
    A room's message history, in the order of ``seq``: an integer per room,
    strictly increasing, that this store hands out (``next_seq``) and never
    gives out twice, whatever restarts. Messages are the ``message`` frames
    as sent (with ``room``, ``id`` and ``seq``), stored with an expiry.

    The store also remembers, for a while, which clientMessageIds a sender
    has used in a room, so that a resent message is not stored twice.
    """

    def __init__(self, **options: Any) -> None:
        _no_options(self, options, "CHAT_MESSAGE_STORE")

    @abstractmethod
    async def next_seq(self, room: str) -> int:
        """The room's next seq (1 for a new room), given out once."""

    @abstractmethod
    async def append(self, message: dict[str, Any], *, expires_at: int) -> None:
        """Store one message frame (it has ``room``, ``id`` and ``seq``)."""

    @abstractmethod
    async def get(self, room: str, seq: int) -> dict[str, Any] | None:
        """The message with this seq, or None."""

    @abstractmethod
    async def seq_by_id(self, room: str, message_id: str, *, inclusive: bool) -> int:
        """
        A cursor given as a message id (as cursors were before seqs; ids sort
        by time) as a seq: that of the newest message whose id is below
        ``message_id`` (or equal to it, with ``inclusive``); 0 when none is.
        """

    @abstractmethod
    async def latest(self, room: str, *, limit: int) -> list[dict[str, Any]]:
        """The room's last ``limit`` messages, oldest first."""

    @abstractmethod
    async def after(self, room: str, seq: int, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The ``limit`` messages after ``seq``, oldest first; True when more follow."""

    @abstractmethod
    async def before(self, room: str, seq: int, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The ``limit`` messages just before ``seq``, oldest first; True when older ones exist."""

    @abstractmethod
    async def claim_send(self, key: str, *, expires_at: int) -> int | None:
        """
        Claim a send (``key`` names room, sender and clientMessageId) until
        ``expires_at``: None when this call claimed it; else the seq the
        first send got, or ``SEND_PENDING`` while it has none yet. A claim
        still pending after ``PENDING_SEND_LAPSE`` seconds (its send failed)
        may be claimed again.
        """

    @abstractmethod
    async def settle_send(self, key: str, seq: int) -> None:
        """Record the seq a claimed send got."""

    @abstractmethod
    async def claimed(self, key: str) -> bool:
        """Whether a send of ``key`` is claimed and unexpired (made, or under way): a resend, not a new send."""

    # --- Changes to a message --------------------------------------------------
    # Each returns the message as it is now, ``version`` counted up by one.
    # The events that tell the room (``reaction``, ``message_edited``,
    # ``message_deleted`` frames) are appended like messages, at seqs of
    # their own: ``latest``, ``after`` and ``before`` return both, in seq order.

    @abstractmethod
    async def find(self, room: str, message_id: str) -> dict[str, Any] | None:
        """The message with this id in ``room``, in its current state (a tombstone if deleted), or None."""

    @abstractmethod
    async def react(self, room: str, seq: int, *, emoji: str, who: str, limit: int) -> tuple[dict[str, Any], bool]:
        """
        Toggle ``who``'s ``emoji`` on the message at ``seq``: the message now,
        and True if the reaction was added. ``UnknownMessage`` if there is no
        such message or it was deleted; ``TooManyReactions`` if adding it
        would give ``who`` more than ``limit`` distinct emoji on it.
        """

    @abstractmethod
    async def edit(self, room: str, seq: int, *, text: str, edited_at: str) -> dict[str, Any]:
        """Replace the message's text; ``UnknownMessage`` if there is no such message or it was deleted."""

    @abstractmethod
    async def delete(self, room: str, seq: int) -> dict[str, Any] | None:
        """
        Make the message a tombstone (no text, reactions or reply): the
        tombstone, or None if it was one already. ``UnknownMessage`` if
        there is no such message.
        """

    async def ensure_tables(self) -> list[str]:
        """Create whatever the store needs; return what was created. Idempotent."""
        return []


@dataclass(frozen=True, slots=True)
class Mute:
    """Who is muted (as the operator named them) and until when (epoch seconds)."""

    name: str
    until: float


@dataclass(frozen=True, slots=True)
class RoomRules:
    """A room's moderation: slow mode (seconds between one person's messages; 0: off), lock, and mutes by person key."""

    slow_mode: int = 0
    locked: bool = False
    mutes: dict[str, Mute] = field(default_factory=dict)

    def muted_until(self, keys: list[str], now: float) -> float | None:
        """The latest end of a mute in force on any of a person's keys, or None."""
        ends = [self.mutes[key].until for key in keys if key in self.mutes and self.mutes[key].until > now]
        return max(ends) if ends else None


class ModerationStore(ABC):
    """
    What operators decided, read by every server process: each room's rules
    and mutes, and bans across all rooms. A person is named by keys
    (``name:<folded display name>``, ``tag:<sender tag>``): a mute or ban
    by name also covers the identities that were using that name.
    """

    def __init__(self, **options: Any) -> None:
        _no_options(self, options, "CHAT_MODERATION_STORE")

    @abstractmethod
    async def rules(self, room: str) -> RoomRules:
        """The room's rules (defaults when none were set)."""

    @abstractmethod
    async def set_rules(self, room: str, *, slow_mode: int | None = None, locked: bool | None = None) -> RoomRules:
        """Change the room's slow mode and lock (None: unchanged); the rules now."""

    @abstractmethod
    async def mute(self, room: str, keys: list[str], *, name: str, until: float) -> None:
        """Mute a person (by all their keys) in ``room`` until ``until``."""

    @abstractmethod
    async def unmute(self, room: str, name: str) -> bool:
        """Lift the mutes made under ``name`` (compared case-folded) in ``room``; False if there were none."""

    @abstractmethod
    async def bans(self) -> dict[str, Mute]:
        """Every ban by person key (expired ones may be among them)."""

    @abstractmethod
    async def ban(self, keys: list[str], *, name: str, until: float) -> None:
        """Ban a person (by all their keys) from every room until ``until``."""

    @abstractmethod
    async def unban(self, name: str) -> bool:
        """Lift the bans made under ``name``; False if there were none."""

    @abstractmethod
    async def take_turn(self, room: str, who: str, *, seconds: int, now: float) -> float | None:
        """
        Slow mode: record that ``who`` sends in ``room`` now, if their last
        send there was at least ``seconds`` ago: None. Otherwise nothing is
        recorded and the answer is when they may send again.
        """

    async def ensure_tables(self) -> list[str]:
        return []
