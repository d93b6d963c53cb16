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
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from .logs import log_task_death
from .protocol import JOIN, decode

logger = logging.getLogger(__name__)

ROOM_EVENT = "room.frame"
# Events for one socket of this process: a prepared text frame, or a close.
SOCKET_FRAME = "socket.frame"
SOCKET_CLOSE = "socket.close"
# Seconds after a welcome during which its history's messages are not sent again:
# longer than a message can take from its history write to its publish.
SKIP_WINDOW = 10.0

Send = Callable[[str], Awaitable[None]]
# seed(room) -> (roster: connection id -> name, recent message frames)
Seed = Callable[[str], Awaitable[tuple[dict[str, str], list[dict[str, Any]]]]]
Close = Callable[[int], Awaitable[None]]


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


class Member:
    """
    One local socket in a room. Until it is ready (its welcome frame sent),
    room frames wait in ``pending`` with their message ids. After that, for a
    short while, messages the welcome's history already carried are skipped:
    a message is stored before it is published, so one can be in the history
    and still arrive live a moment later.
    """

    __slots__ = ("close", "connection_id", "pending", "send", "skip", "skip_until")

    def __init__(self, connection_id: str, send: Send, close: Close) -> None:
        self.connection_id = connection_id
        self.send = send
        self.close = close
        self.pending: list[tuple[str | None, str]] | None = []
        self.skip: set[str] | None = None
        self.skip_until = 0.0

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
        self.members: dict[str, Member] = {}
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
        self.sockets: dict[str, Member] = {}
        self._channel: str | None = None
        self._task: asyncio.Task | None = None
        self._started = asyncio.Lock()

    async def join(self, name: str, member: Member, seed: Seed) -> Room:
        """
        Add a local socket. The first one in a room subscribes this process to
        it, then seeds the room with ``seed(name)`` (roster, recent messages);
        the others wait for that.
        """
        self.sockets[member.connection_id] = member
        room = self.rooms.get(name)
        if room is not None:
            room.members[member.connection_id] = member
            try:
                await asyncio.shield(room.joined)
            except BaseException:
                room.members.pop(member.connection_id, None)
                self.sockets.pop(member.connection_id, None)
                raise
            return room
        room = self.rooms[name] = Room(self.recent_limit)
        room.members[member.connection_id] = member
        try:
            await self.layer.group_add(room_group(name), self._channel)
            room.seeded(*await seed(name))
        except BaseException as error:
            self.sockets.pop(member.connection_id, None)
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
        """Remove a local socket; the last one out unsubscribes this process."""
        self.sockets.pop(connection_id, None)
        room = self.rooms.get(name)
        if room is None:
            return
        room.members.pop(connection_id, None)
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
                logger.exception("delivery failed", extra={"connection_id": member.connection_id})

    async def deliver_to_socket(self, event: dict[str, Any]) -> None:
        """An event for one socket: its frame, or its close."""
        member = self.sockets.get(event.get("connectionId"))
        if member is None:
            return
        if event["type"] == SOCKET_CLOSE:
            await member.close(event["code"])
        elif member.pending is not None:
            member.pending.append((None, event["text"]))
        else:
            await member.send(event["text"])

    @property
    def channel(self) -> str:
        """This process's channel, once ``start`` has run."""
        if self._channel is None:
            raise RuntimeError("the room relay has not started")
        return self._channel

    async def start(self) -> None:
        """Make the channel and start receiving; idempotent."""
        if self._task is not None:
            return
        async with self._started:
            if self._task is None:
                self._channel = await self.layer.new_channel("relay")
                self._task = asyncio.create_task(self._receive(), name="chat-room-relay")
                self._task.add_done_callback(log_task_death)

    async def _receive(self) -> None:
        delay = 0.1
        while True:
            try:
                event = await self.layer.receive(self._channel)
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
            kind = event.get("type")
            if kind == ROOM_EVENT:
                await self.deliver(event)
            elif kind in (SOCKET_FRAME, SOCKET_CLOSE):
                await self.deliver_to_socket(event)


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
