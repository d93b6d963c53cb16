"""
Room fan-out, and delivery to one socket, inside one server process.

A room is a Channels group, but its members are server processes, not
sockets: each process joins ``room.<name>`` once, through one channel of its
own, while it holds at least one socket in that room. A broadcast is then one
channel-layer message per process, encoded once; this relay writes that same
text to each local socket. Per member it costs one write, not a Redis round
trip, a queue, a task and a JSON encode, which is what bounds a consumer that
joins the group itself.
"""

import asyncio
import bisect
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from . import metrics
from .daphne_sockets import Wire, text_frame
from .protocol import JOIN, MESSAGE, MESSAGE_DELETED, MESSAGE_EDITED, MESSAGE_EVENTS, decode, encode, tombstone
from .stores import Connection, get_message_store

logger = logging.getLogger(__name__)

ROOM_EVENT = "room.frame"
# Events for one socket of this process: a prepared text frame, or a close.
SOCKET_FRAME = "socket.frame"
SOCKET_CLOSE = "socket.close"
# Events for every process (each relay's channel is in this group): type -> listeners (see ``listen``).
CONTROL_GROUP = "chat.control"
# How long a message that came early waits for the ones before it: after each
# wait the store is read for them; after the last, the seqs still missing are
# taken to have been given out but never sent (a sender that failed between
# its seq and its publish). Together longer than a history write may take.
GAP_WAITS = (0.25, 0.75, 2.5)
GAP_READ_TIMEOUT = 2.0
# After the channel layer fails, rooms read what they missed from the store
# once every CATCH_UP_EVERY seconds, for CATCH_UP_SECONDS after the last failure.
CATCH_UP_EVERY = 1.0
CATCH_UP_SECONDS = 15.0
CATCH_UP_BATCH = 100
# Sockets end up to this fraction before the longest connection life.
MAX_DURATION_JITTER = 0.1

# seed(room) -> (roster: connection id -> name, recent message frames)
Seed = Callable[[str], Awaitable[tuple[dict[str, str], list[dict[str, Any]]]]]


def room_group(room: str) -> str:
    return f"room.{room}"


def room_event(
    *,
    room: str,
    text: str,
    exclude: str | None = None,
    message_id: str | None = None,
    seq: int | None = None,
    presence: dict[str, str] | None = None,
    at: float | None = None,
) -> dict[str, Any]:
    """
    The channel-layer message that carries one encoded frame to a room; a
    message's seq, and a presence frame's fields, ride along so every
    process can order the one and keep its roster with the other. ``at``:
    when it was published (``time.time()``), for ``chat_delivery_seconds``.
    """
    return {
        "type": ROOM_EVENT,
        "room": room,
        "text": text,
        "exclude": exclude,
        "id": message_id,
        "seq": seq,
        "presence": presence,
        "at": at,
    }


def socket_frame(*, connection_id: str, text: str) -> dict[str, Any]:
    """The channel-layer message that carries one text frame to one socket."""
    return {"type": SOCKET_FRAME, "connectionId": connection_id, "text": text}


def socket_close(*, connection_id: str, code: int) -> dict[str, Any]:
    """The channel-layer message that closes one socket."""
    return {"type": SOCKET_CLOSE, "connectionId": connection_id, "code": code}


class SocketClient(Protocol):
    """What the relay and the instance need of the consumer behind a socket."""

    async def send_text(self, text: str) -> None: ...

    async def close_by_operator(self, code: int) -> None: ...

    async def close_with(self, code: int, error_code: str, sentence: str) -> None: ...


class LocalSocket:
    """
    One socket this process holds: the one record of it, kept in
    ``RoomRelay.sockets`` and looked up there by the instance's duties, the
    drain and the operator paths. It knows its connection, how to write to
    and close the socket (through the consumer), the times its limits count
    from, and how far its registration got, so that whatever fails is undone
    exactly.

    Until it is ready (its welcome frame sent), room frames wait in
    ``pending`` with their seqs. Messages up to the last seq its welcome's
    history carried (``after_seq``) are skipped: a message is stored before
    it is published, so one can be in the history and still arrive live a
    moment later.
    """

    __slots__ = (
        "active_at",
        "after_seq",
        "announced",
        "client",
        "connection",
        "connection_id",
        "drained",
        "ends_at",
        "last_active",
        "opened",
        "pending",
        "recorded_at",
        "registered",
        "wire",
    )

    def __init__(
        self,
        connection: Connection,
        client: SocketClient,
        *,
        max_duration: float = float("inf"),
        wire: Wire | None = None,
    ) -> None:
        self.connection = connection
        # daphne's socket itself, for room frames prepared once for every member (chat.daphne_sockets).
        self.wire = wire
        self.connection_id = connection.connection_id
        self.client = client
        self.pending: list[tuple[int | None, str]] | None = []
        self.after_seq = 0
        self.announced = False  # its room was told it joined
        self.registered = False  # its registry item was written
        self.drained = False  # told to reconnect elsewhere: the drain removes its registry item
        self.opened = self.last_active = time.monotonic()
        # Up to a tenth earlier than the limit, so the sockets of one deploy do not all end in the same second.
        self.ends_at = self.opened + max_duration * (1 - MAX_DURATION_JITTER * random.random())
        self.active_at = 0.0  # wall clock of the last frame from the client; 0: none yet
        self.recorded_at = float("-inf")  # monotonic time lastActiveAt was last written

    async def send(self, text: str) -> None:
        await self.client.send_text(text)

    async def close(self, code: int) -> None:
        """An operator's close, whose notice was sent already."""
        await self.client.close_by_operator(code)

    async def close_with(self, code: int, error_code: str, sentence: str) -> None:
        """An ``error`` frame saying why, then the close."""
        await self.client.close_with(code, error_code, sentence)

    def touch(self) -> None:
        """A frame came from the client."""
        self.last_active = time.monotonic()
        self.active_at = time.time()

    async def ready(self, after_seq: int = 0) -> None:
        """Deliver what arrived before the welcome frame, less what its history carried, then go live."""
        self.after_seq = after_seq
        while self.pending:
            batch, self.pending = self.pending, []
            for seq, text in batch:
                if not self.skips(seq):
                    await self.send(text)
                    metrics.DELIVERIES.inc()
        self.pending = None

    def skips(self, seq: int | None) -> bool:
        """True for a message the welcome's history already carried."""
        return seq is not None and seq <= self.after_seq


class Room:
    """
    A room as this process sees it: its local sockets; its roster (everyone in
    it, on any process); its recent messages; and where its order stands.
    Roster and messages are read once from the stores when the process joins
    the room's group, then kept by the room events every process of the room
    receives.

    Messages are delivered in seq order: ``last_seq`` is the last one
    delivered; one that comes early waits in ``held`` while the relay looks
    for the ones before it, briefly and boundedly (``GAP_WAITS``).
    """

    __slots__ = (
        "backlog",
        "gap",
        "held",
        "joined",
        "last_seq",
        "members",
        "order",
        "recent",
        "recent_limit",
        "roster",
    )

    def __init__(self, recent_limit: int) -> None:
        self.members: dict[str, LocalSocket] = {}
        self.roster: dict[str, str] = {}  # connection id -> name
        # Message frames sorted by seq; None once they may miss one (the channel
        # layer failed), and then the store is read instead.
        self.recent: list[dict[str, Any]] | None = []
        self.recent_limit = recent_limit
        self.backlog: list[dict[str, Any]] | None = []  # room events seen while seeding
        self.joined: asyncio.Future = asyncio.get_running_loop().create_future()
        self.last_seq: int | None = None  # None until seeded
        self.held: dict[int, dict[str, Any]] = {}  # seq -> message event that came early
        self.gap: asyncio.Task | None = None
        self.order = asyncio.Lock()  # one ordered delivery at a time (the relay's, or a gap's)

    def seeded(self, roster: dict[str, str], recent: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """
        Take what the stores hold, then what happened while they were read;
        returns the message events of that time, to be delivered in order.
        """
        self.roster.update(roster)
        for message in recent:
            self.remember(message)
        # Delivered so far: up to the end of the run without a hole. A hole near
        # the top is a message still being written: it comes live, or the gap
        # is filled from the store, rather than being passed over as delivered.
        self.last_seq = recent[0]["seq"] if recent else 0
        for message in recent[1:]:
            if message["seq"] != self.last_seq + 1:
                break
            self.last_seq = message["seq"]
        backlog, self.backlog = self.backlog or [], None
        for event in backlog:
            if event.get("presence"):
                self.apply(event)
        return [event for event in backlog if event.get("seq") is not None]

    def apply(self, event: dict[str, Any]) -> None:
        """Keep the roster up to date with one presence event (held back while seeding)."""
        if self.backlog is not None:
            self.backlog.append(event)
        elif presence := event.get("presence"):
            if presence["event"] == JOIN:
                self.roster[presence["connectionId"]] = presence["name"]
            else:
                self.roster.pop(presence["connectionId"], None)

    def accept(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """
        One message event in; the message events now due, in seq order: it
        and those held after it, or nothing (a copy, or it came early).
        """
        seq = event["seq"]
        if seq <= self.last_seq or seq in self.held:
            return []
        if seq != self.last_seq + 1:
            self.held[seq] = event
            return []
        due = [event]
        self.last_seq = seq
        while (after := self.held.pop(self.last_seq + 1, None)) is not None:
            due.append(after)
            self.last_seq += 1
        return due

    def skip_to(self, seq: int) -> list[dict[str, Any]]:
        """Give up on the seqs up to ``seq`` that never came (none exists); the held ones now due."""
        if seq > self.last_seq:
            self.last_seq = seq
        for early in [s for s in self.held if s <= self.last_seq]:
            del self.held[early]
        due = []
        while (after := self.held.pop(self.last_seq + 1, None)) is not None:
            due.append(after)
            self.last_seq += 1
        return due

    def remember(self, message: dict[str, Any]) -> None:
        """
        Keep a frame of the room's stream: a message, or an event about one,
        which also brings the message kept here to its current state.
        """
        recent, seq = self.recent, message["seq"]
        if recent is None:
            return
        if message.get("type") in MESSAGE_EVENTS:
            _apply_event(recent, message)
        if len(recent) >= self.recent_limit and seq <= recent[0]["seq"]:
            return  # older than the window: not ours to keep
        if any(m["seq"] == seq for m in recent[-8:]):
            return
        bisect.insort(recent, message, key=lambda m: m["seq"])
        del recent[: -self.recent_limit or len(recent)]

    def latest(self) -> list[dict[str, Any]] | None:
        """The recent messages and events, oldest first; None when they cannot be trusted and the store must be read."""
        return None if self.recent is None else list(self.recent)


def _apply_event(recent: list[dict[str, Any]], event: dict[str, Any]) -> None:
    """A change to a message kept in ``recent``, if it is there and the change is newer than what it holds."""
    target = event["messageId"]
    for index in range(len(recent) - 1, -1, -1):
        message = recent[index]
        if message.get("id") != target or message.get("type") != MESSAGE:
            continue
        if message.get("deleted") or event["version"] <= message.get("version", 1):
            return
        if event["type"] == MESSAGE_DELETED:
            recent[index] = tombstone(message, version=event["version"])
        elif event["type"] == MESSAGE_EDITED:
            recent[index] = {**message, "message": event["message"], "editedAt": event["editedAt"]}
        else:
            recent[index] = {**message, "reactions": event["reactions"]}
        recent[index]["version"] = event["version"]
        return


class RoomRelay:
    """
    The rooms this process holds sockets in, and the task that feeds them.
    Its one channel (``channel``) is what the registry records as each
    socket's ``channelName``: events for one socket come through it too, so
    no socket needs a channel, a subscription or a task of its own.
    """

    def __init__(self, layer, presence_limit: int, recent_limit: int) -> None:
        self.layer = layer
        self.presence_limit = presence_limit
        self.recent_limit = recent_limit
        self.rooms: dict[str, Room] = {}
        self.sockets: dict[str, LocalSocket] = {}
        self._channel: str | None = None
        self._opening = asyncio.Lock()
        self._catching_up: asyncio.Task | None = None
        self._catch_up_until = 0.0
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {}

    def listen(self, kind: str, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener`` with every event of type ``kind`` sent to ``CONTROL_GROUP``."""
        self._listeners.setdefault(kind, []).append(listener)

    async def join(self, name: str, socket: LocalSocket, seed: Seed) -> Room:
        """
        Add a local socket. The first one in a room subscribes this process to
        it, then seeds the room with ``seed(name)`` (roster, recent messages);
        the others wait for that. On failure the socket is in no room.
        """
        self.sockets[socket.connection_id] = socket
        room = self.rooms.get(name)
        if room is not None:
            room.members[socket.connection_id] = socket
            try:
                await asyncio.shield(room.joined)
            except BaseException:
                await self.leave(name, socket.connection_id)
                raise
            return room
        room = self.rooms[name] = Room(self.recent_limit)
        room.members[socket.connection_id] = socket
        try:
            await self.layer.group_add(room_group(name), self._channel)
            early = room.seeded(*await seed(name))
        except BaseException as error:
            self.sockets.pop(socket.connection_id, None)
            if self.rooms.get(name) is room:
                del self.rooms[name]
            room.joined.set_exception(error)
            room.joined.exception()  # retrieved: only the waiters re-raise it
            raise
        room.joined.set_result(None)
        for event in early:
            await self._deliver_message(name, room, event)
        return room

    def served_rooms(self, limit: int = 1000) -> dict[str, int]:
        """The rooms this process holds sockets in (the ``limit`` busiest) -> how many."""
        sizes = sorted(((len(room.members), name) for name, room in self.rooms.items()), reverse=True)
        return {name: size for size, name in sizes[:limit] if size}

    def distrust_recent(self, name: str | None = None) -> None:
        """A message may have been stored but not relayed: read history from the store from now on."""
        for room_name, room in self.rooms.items():
            if name is None or room_name == name:
                room.recent = None

    async def leave(self, name: str, connection_id: str) -> None:
        """Remove a local socket (idempotent); the last one out unsubscribes this process."""
        self.sockets.pop(connection_id, None)
        room = self.rooms.get(name)
        if room is None or room.members.pop(connection_id, None) is None:
            return
        room.roster.pop(connection_id, None)  # its leave event may never come (a connect that failed)
        if room.members or not room.joined.done():
            return
        del self.rooms[name]
        await self.layer.group_discard(room_group(name), self._channel)

    async def deliver(self, event: dict[str, Any]) -> None:
        """Write one room event's text to every local member it is for; messages in seq order."""
        name = event.get("room")
        room = self.rooms.get(name)
        if room is None:
            return
        if event.get("seq") is not None:
            if room.backlog is not None:
                room.backlog.append(event)  # seeding: ordered once the room knows where it stands
            else:
                await self._deliver_message(name, room, event)
            return
        room.apply(event)
        if event.get("presence") and len(room.roster) > self.presence_limit:
            return  # a big room keeps its roster, but spares every member each join and leave
        await self._write(room, event)

    async def _deliver_message(self, name: str, room: Room, event: dict[str, Any]) -> None:
        async with room.order:
            for due in room.accept(event):
                room.remember(decode(due["text"]))
                await self._write(room, due)
        if room.held and room.gap is None:
            room.gap = asyncio.get_running_loop().create_task(self._fill_gap(name, room), name=f"chat-gap-{name}")

    async def _fill_gap(self, name: str, room: Room) -> None:
        """
        Messages came early: wait for the ones before them, reading the store
        for them after each of ``GAP_WAITS``; after the last, skip the seqs
        that exist nowhere. Bounded: at most the sum of the waits, plus reads.
        """
        try:
            while room.held and self.rooms.get(name) is room:
                first = min(room.held)
                for wait in GAP_WAITS:
                    await asyncio.sleep(wait)
                    if room.last_seq >= first - 1:
                        break  # they came
                    try:
                        found, _ = await asyncio.wait_for(
                            get_message_store().after(name, room.last_seq, limit=first - room.last_seq - 1),
                            GAP_READ_TIMEOUT,
                        )
                    except Exception:
                        logger.warning("missing messages not read", exc_info=True, extra={"room": name})
                        continue
                    for message in found:
                        if message["seq"] < first:
                            await self._deliver_message_frame(name, room, message)
                    if room.last_seq >= first - 1:
                        break
                else:
                    logger.warning(
                        "seqs given out but never sent; skipped",
                        extra={"room": name, "from": room.last_seq + 1, "to": first - 1},
                    )
                async with room.order:
                    for due in room.skip_to(first - 1):
                        room.remember(decode(due["text"]))
                        await self._write(room, due)
        finally:
            room.gap = None

    async def _deliver_message_frame(self, name: str, room: Room, message: dict[str, Any]) -> None:
        """A message read from the store, delivered as if it had come live."""
        await self._deliver_message(
            name, room, room_event(room=name, text=encode(message), message_id=message.get("id"), seq=message["seq"])
        )

    async def _write(self, room: Room, event: dict[str, Any]) -> None:
        text, exclude, seq = event["text"], event.get("exclude"), event.get("seq")
        written = 0
        frame = None  # the WebSocket frame, made once for the members with a wire
        for member in list(room.members.values()):
            if member.connection_id == exclude:
                continue
            if member.pending is not None:
                member.pending.append((seq, text))
                continue
            if member.skips(seq):
                continue
            try:
                if (wire := member.wire) is not None:
                    if frame is None:
                        frame = text_frame(text)
                    if wire.write(frame):
                        written += 1
                        continue
                await member.send(text)
                written += 1
            except Exception:
                # One socket that cannot be written (it is closing) costs the others nothing.
                logger.warning("delivery failed", exc_info=True, extra={"connection_id": member.connection_id})
        # Counted once per event, not per socket: the loop above is the fan-out's hot path.
        if written:
            metrics.DELIVERIES.inc(written)
            if published := event.get("at"):
                # Wall clocks of two hosts may disagree a little: never below zero.
                metrics.DELIVERY_SECONDS.observe(max(0.0, time.time() - published))

    async def deliver_to_socket(self, event: dict[str, Any]) -> None:
        """An event for one socket: its frame, or its close."""
        socket = self.sockets.get(event.get("connectionId"))
        if socket is None:
            return
        if event["type"] == SOCKET_CLOSE:
            await socket.close(event["code"])
        elif socket.pending is not None:
            socket.pending.append((None, event["text"]))
        else:
            await socket.send(event["text"])
            metrics.DELIVERIES.inc()

    @property
    def channel(self) -> str:
        """This process's channel, once ``open`` has run."""
        if self._channel is None:
            raise RuntimeError("the room relay has not started")
        return self._channel

    async def open(self) -> None:
        """Make this process's channel; idempotent. ``run`` then receives on it."""
        if self._channel is None:
            async with self._opening:
                if self._channel is None:
                    channel = await self.layer.new_channel("relay")
                    await self.layer.group_add(CONTROL_GROUP, channel)
                    self._channel = channel

    async def run(self) -> None:
        """
        Receive and deliver events until cancelled; supervised. Nothing one
        event does stops the next: a failure is logged, and delivery goes on.
        """
        delay = 0.1
        while True:
            try:
                await self.open()
                event = await self.layer.receive(self.channel)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception:
                # The layer lost Redis: say so once per failure and retry with backoff.
                metrics.CHANNEL_LAYER_ERRORS.inc()
                logger.exception("room relay cannot receive; retrying", extra={"retry_in": delay})
                self.distrust_recent()
                self._catch_up_after_outage()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                kind = event.get("type")
                if kind == ROOM_EVENT:
                    await self.deliver(event)
                elif kind in (SOCKET_FRAME, SOCKET_CLOSE):
                    await self.deliver_to_socket(event)
                else:
                    for listener in self._listeners.get(kind, ()):
                        listener(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("room event not delivered", extra={"event_type": event.get("type")})

    def _catch_up_after_outage(self) -> None:
        """
        Messages published while the layer was down (or re-subscribing)
        reached nobody live, and in a quiet room no later one would show the
        gap: for ``CATCH_UP_SECONDS`` after the last failure, every room
        reads the store after its last delivered seq once a second.
        """
        loop = asyncio.get_running_loop()
        self._catch_up_until = loop.time() + CATCH_UP_SECONDS
        if self._catching_up is None:
            self._catching_up = loop.create_task(self._catch_up(), name="chat-relay-catch-up")

    async def _catch_up(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while loop.time() < self._catch_up_until:
                await asyncio.sleep(CATCH_UP_EVERY)
                for name, room in list(self.rooms.items()):
                    if room.last_seq is None:
                        continue
                    try:
                        found, _ = await asyncio.wait_for(
                            get_message_store().after(name, room.last_seq, limit=CATCH_UP_BATCH), GAP_READ_TIMEOUT
                        )
                    except Exception:
                        logger.warning("messages missed in an outage not read", exc_info=True, extra={"room": name})
                        continue
                    for message in found:
                        await self._deliver_message_frame(name, room, message)
        except Exception:
            logger.exception("catching up after an outage stopped")
        finally:
            self._catching_up = None


_relays: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RoomRelay]" = weakref.WeakKeyDictionary()


def get_room_relay() -> RoomRelay:
    """This event loop's relay (one per process under daphne)."""
    loop = asyncio.get_running_loop()
    relay = _relays.get(loop)
    if relay is None:
        # Twice the welcome's messages, as room_seed reads: events about them sit in between.
        relay = _relays[loop] = RoomRelay(
            get_channel_layer(), settings.CHAT_PRESENCE_LIMIT, 2 * settings.CHAT_HISTORY_LIMIT
        )
    return relay


def relays() -> list[RoomRelay]:
    """Every relay of this process, from any thread: one under daphne (one per event loop in tests)."""
    return list(_relays.values())
