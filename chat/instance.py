"""
This server process's own duties, run in the background of its event loop:
a heartbeat in the registry, a sweep for processes that died without
running ``$disconnect``, and the idle and maximum-duration limits of the
sockets it holds. They start with the first socket (`ServerInstance.start`,
which also starts the room relay), end with the event loop, and log if they
fail.
"""

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings

from . import protocol, services
from .logs import log_task_death
from .relay import get_room_relay
from .stores import Connection

logger = logging.getLogger(__name__)

# close(code, error_code, sentence): what the instance calls to end a socket.
Close = Callable[[int, str, str], Awaitable[None]]


@dataclass(slots=True, eq=False)
class LocalSocket:
    """A socket this process holds, with the times its limits count from."""

    connection: Connection
    close: Close
    opened: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    active_at: float = 0.0  # wall clock of the last frame from the client; 0: none yet
    recorded_at: float = float("-inf")  # monotonic time lastActiveAt was last written

    def touch(self) -> None:
        """A frame came from the client."""
        self.last_active = time.monotonic()
        self.active_at = time.time()


class ServerInstance:
    def __init__(self) -> None:
        self.instance_id: str = settings.CHAT_INSTANCE_ID
        self.interval = float(settings.CHAT_HEARTBEAT_INTERVAL)
        self.idle_timeout = float(settings.CHAT_IDLE_TIMEOUT)
        self.max_duration = float(settings.CHAT_MAX_CONNECTION_DURATION)
        self.sockets: dict[str, LocalSocket] = {}
        self._tasks: list[asyncio.Task] = []
        self._starting: asyncio.Lock = asyncio.Lock()

    def attach(self, socket: LocalSocket) -> None:
        self.sockets[socket.connection.connection_id] = socket

    def detach(self, connection_id: str) -> None:
        self.sockets.pop(connection_id, None)

    async def start(self) -> None:
        """
        Start the room relay and the background duties once; the first
        heartbeat is written before it returns.
        """
        if self._tasks:
            return
        async with self._starting:
            if self._tasks:
                return
            await get_room_relay().start()
            try:
                await services.instance_heartbeat(instance_id=self.instance_id, interval=self.interval)
            except Exception:
                logger.exception("first heartbeat failed", extra={"instance_id": self.instance_id})
            sockets_every = max(0.2, min(1.0, self.idle_timeout / 4, self.max_duration / 4))
            self._tasks = [
                self._every(self.interval, self._beat, "heartbeat"),
                self._every(self.interval / 4, self._sweep, "sweep"),
                self._every(sockets_every, self._look_after_sockets, "sockets"),
            ]

    def _every(self, seconds: float, duty: Callable[[], Awaitable[object]], name: str) -> asyncio.Task:
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await duty()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("%s failed; trying again in %.1f s", name, seconds)

        task = asyncio.create_task(loop(), name=f"chat-{name}")
        task.add_done_callback(log_task_death)
        return task

    async def _beat(self) -> None:
        held = [socket.connection for socket in self.sockets.values()]
        await services.instance_heartbeat(instance_id=self.instance_id, interval=self.interval, held=held)

    async def _sweep(self) -> None:
        await services.instance_sweep(instance_id=self.instance_id)

    async def _look_after_sockets(self) -> None:
        """Close sockets past their limits; record recent activity (at most once a minute each)."""
        now = time.monotonic()
        touches = []
        for socket in list(self.sockets.values()):
            recent = socket.active_at and socket.last_active > socket.recorded_at
            if recent and now - socket.recorded_at >= protocol.LAST_ACTIVE_INTERVAL:
                socket.recorded_at = now
                moment = protocol.iso_timestamp(datetime.fromtimestamp(socket.active_at, UTC))
                touches.append(services.connection_touch(connection_id=socket.connection.connection_id, moment=moment))
            if now - socket.opened >= self.max_duration:
                self.detach(socket.connection.connection_id)
                await socket.close(
                    protocol.CLOSE_MAX_DURATION,
                    protocol.MAX_DURATION,
                    f"Connections last at most {_span(self.max_duration)}; reconnect to carry on.",
                )
            elif now - socket.last_active >= self.idle_timeout:
                self.detach(socket.connection.connection_id)
                await socket.close(
                    protocol.CLOSE_IDLE,
                    protocol.IDLE_TIMEOUT,
                    f"Closed after {_span(self.idle_timeout)} without activity; reconnect to carry on.",
                )
        await asyncio.gather(*touches)


def _span(seconds: float) -> str:
    """``2 hours``, ``10 minutes``, ``1 second``: a limit as a person reads it."""
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if (seconds >= size and seconds % size == 0) or unit == "second":
            count = round(seconds / size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    raise AssertionError("unreachable")


_instances: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ServerInstance]" = weakref.WeakKeyDictionary()


def get_server_instance() -> ServerInstance:
    """This event loop's instance (one per process under daphne)."""
    loop = asyncio.get_running_loop()
    instance = _instances.get(loop)
    if instance is None:
        instance = _instances[loop] = ServerInstance()
    return instance
