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

from .protocol import JOIN, decode
from .stores import Connection

logger = logging.getLogger(__name__)

ROOM_EVENT = "room.frame"
# Events for one socket of this process: a prepared text frame, or a close.
SOCKET_FRAME = "socket.frame"
SOCKET_CLOSE = "socket.close"
# Seconds after a welcome during which its history's messages are not sent again:
# longer than a message can take from its history write to its publish.
SKIP_WINDOW = 10.0
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
    presence: dict[str, str] | None = None,
) -> dict[str, Any]:
    """
    The channel-layer message that carries one encoded frame to a room; a
    presence frame's fields ride along so every process can keep its roster.
    """
    return {"type": ROOM_EVENT, "room": room, "text": text, "exclude": exclude, "id": message_id, "presence": presence}


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
    ``pending`` with their message ids. After that, for a short while,
    messages the welcome's history already carried are skipped: a message is
    stored before it is published, so one can be in the history and still
    arrive live a moment later.
    """

    __slots__ = (
        "active_at",
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
        "skip",
        "skip_until",
    )

    def __init__(self, connection: Connection, client: SocketClient, *, max_duration: float = float("inf")) -> None:
        self.connection = connection
        self.connection_id = connection.connection_id
        self.client = client
        self.pending: list[tuple[str | None, str]] | None = []
        self.skip: set[str] | None = None
        self.skip_until = 0.0
        self.announced = False  # its room was told it joined
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

    async def ready(self, already_sent: set[str] = frozenset()) -> None:
        """Deliver what arrived before the welcome frame, less what it carried, then go live."""
        if already_sent:
            self.skip = set(already_sent)
            self.skip_until = time.monotonic() + SKIP_WINDOW
        while self.pending:
            batch, self.pending = self.pending, []
            for message_id, text in batch:
                if not self.skips(message_id):
                    await self.send(text)
        self.pending = None

    def skips(self, message_id: str | None) -> bool:
        """True (once) for a message the welcome already carried."""
        if self.skip is None or message_id is None:
            return False
        if time.monotonic() > self.skip_until:
            self.skip = None
            return False
        if message_id in self.skip:
            self.skip.discard(message_id)
            return True
        return False


class Room:
    """
    A room as this process sees it: its local sockets; its roster (everyone in
    it, on any process); and its recent messages. Roster and messages are
    read once from the stores when the process joins the room's group, then
    kept by the room events every process of the room receives.
    """

    __slots__ = ("backlog", "joined", "members", "recent", "recent_limit", "roster")

    def __init__(self, recent_limit: int) -> None:
        self.members: dict[str, LocalSocket] = {}
        self.roster: dict[str, str] = {}  # connection id -> name
        # Message frames sorted by id; None once they may miss one (the channel
        # layer failed), and then the store is read instead.
        self.recent: list[dict[str, Any]] | None = []
        self.recent_limit = recent_limit
        self.backlog: list[dict[str, Any]] | None = []  # room events seen while seeding
        self.joined: asyncio.Future = asyncio.get_running_loop().create_future()

    def seeded(self, roster: dict[str, str], recent: list[dict[str, Any]]) -> None:
        """Take what the stores hold, then what happened while they were read."""
        self.roster.update(roster)
        for message in recent:
            self.remember(message)
        backlog, self.backlog = self.backlog or [], None
        for event in backlog:
            self.apply(event)

    def apply(self, event: dict[str, Any]) -> None:
        """Keep roster and recent messages up to date with one room event."""
        if self.backlog is not None:
            self.backlog.append(event)
        elif presence := event.get("presence"):
            if presence["event"] == JOIN:
                self.roster[presence["connectionId"]] = presence["name"]
            else:
                self.roster.pop(presence["connectionId"], None)
        elif event.get("id"):
            self.remember(decode(event["text"]))

    def remember(self, message: dict[str, Any]) -> None:
        recent, message_id = self.recent, message["id"]
        if recent is None:
            return
        if len(recent) >= self.recent_limit and message_id <= recent[0]["id"]:
            return  # older than the window: not ours to keep
        if any(m["id"] == message_id for m in recent[-8:]):
            return
        bisect.insort(recent, message, key=lambda m: m["id"])
        del recent[: -self.recent_limit or len(recent)]

    def latest(self) -> list[dict[str, Any]] | None:
        """The recent messages, oldest first; None when they cannot be trusted and the store must be read."""
        return None if self.recent is None else list(self.recent)


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
            room.seeded(*await seed(name))
        except BaseException as error:
            self.sockets.pop(socket.connection_id, None)
            if self.rooms.get(name) is room:
                del self.rooms[name]
            room.joined.set_exception(error)
            room.joined.exception()  # retrieved: only the waiters re-raise it
            raise
        room.joined.set_result(None)
        return room

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
        """Write one room event's text to every local member it is for."""
        room = self.rooms.get(event.get("room"))
        if room is None:
            return
        room.apply(event)
        if event.get("presence") and len(room.roster) > self.presence_limit:
            return  # a big room keeps its roster, but spares every member each join and leave
        text, exclude, message_id = event["text"], event.get("exclude"), event.get("id")
        for member in list(room.members.values()):
            if member.connection_id == exclude:
                continue
            if member.pending is not None:
                member.pending.append((message_id, text))
                continue
            if member.skip is not None and member.skips(message_id):
                continue
            try:
                await member.send(text)
            except Exception:
                # One socket that cannot be written (it is closing) costs the others nothing.
                logger.warning("delivery failed", exc_info=True, extra={"connection_id": member.connection_id})

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
                    self._channel = await self.layer.new_channel("relay")

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
                logger.exception("room relay cannot receive; retrying", extra={"retry_in": delay})
                self.distrust_recent()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                kind = event.get("type")
                if kind == ROOM_EVENT:
                    await self.deliver(event)
                elif kind in (SOCKET_FRAME, SOCKET_CLOSE):
                    await self.deliver_to_socket(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("room event not delivered", extra={"event_type": event.get("type")})


_relays: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RoomRelay]" = weakref.WeakKeyDictionary()


def get_room_relay() -> RoomRelay:
    """This event loop's relay (one per process under daphne)."""
    loop = asyncio.get_running_loop()
    relay = _relays.get(loop)
    if relay is None:
        relay = _relays[loop] = RoomRelay(
            get_channel_layer(), settings.CHAT_PRESENCE_LIMIT, settings.CHAT_HISTORY_LIMIT
        )
    return relay
