"""
This server process as the others see it, and its background duties: the
room relay, a heartbeat in the registry, a sweep for processes that died
without running ``$disconnect``, and the idle and maximum-duration limits of
the sockets it holds. One ``Supervisor`` runs them all and restarts any that
dies; ``start`` (at startup, or with the first socket) and ``drain`` (on
SIGTERM) are the only ways in and out.

The sockets themselves are recorded once, in the relay (``RoomRelay.sockets``).
"""

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from django.conf import settings

from . import protocol, services
from .limits import AddressLimits, parse_networks
from .relay import LocalSocket, get_room_relay
from .stores import Connection
from .supervisor import Supervisor

logger = logging.getLogger(__name__)

# Sockets are told to reconnect elsewhere over this part of the drain window;
# the rest is left for their close handshakes and the registry's clean-up.
DRAIN_SPREAD = 0.8
# A drain removes registry items of closed sockets in batches this often (seconds).
DRAIN_BATCH_EVERY = 0.5
# Heartbeats after a restore that check the registry still holds every socket
# here (a sweep still under way may remove some again).
VERIFY_BEATS = 2


class ServerInstance:
    def __init__(self) -> None:
        self.instance_id: str = settings.CHAT_INSTANCE_ID
        self.interval = float(settings.CHAT_HEARTBEAT_INTERVAL)
        self.idle_timeout = float(settings.CHAT_IDLE_TIMEOUT)
        self.max_duration = float(settings.CHAT_MAX_CONNECTION_DURATION)
        self.relay = get_room_relay()
        self.addresses = AddressLimits(
            max_open=settings.CHAT_MAX_CONNECTIONS_PER_IP,
            max_new_per_second=settings.CHAT_MAX_CONNECTS_PER_IP_PER_SECOND,
            exempt=parse_networks(settings.CHAT_CONNECTION_LIMIT_EXEMPT, "CHAT_CONNECTION_LIMIT_EXEMPT"),
        )
        self.supervisor: Supervisor | None = None
        self.draining = False
        # Wall clock until which the last heartbeat written promised this process is alive; past
        # it, the others may sweep its connections (None: no heartbeat written yet).
        self.alive_until: float | None = None
        self.beat_failed = False  # the last heartbeat tried did not land
        # Sockets let go of while the heartbeat had lapsed, whose registry items may outlive them.
        self.let_go: list[Connection] = []
        self._verify_beats = 0
        self._first_beat = True
        self._starting: asyncio.Lock = asyncio.Lock()

    @property
    def sockets(self) -> dict[str, LocalSocket]:
        """The sockets this process holds, by connection id."""
        return self.relay.sockets

    async def start(self) -> None:
        """
        Start the room relay and the background duties once; the first
        heartbeat is written (or has failed, logged) before it returns.
        """
        if self.supervisor is not None:
            return
        async with self._starting:
            if self.supervisor is not None:
                return
            try:
                await self.relay.open()
            except Exception:
                logger.exception(
                    "room relay cannot open its channel; retrying", extra={"instance_id": self.instance_id}
                )
            try:
                await self._beat()
            except Exception:
                logger.exception("first heartbeat failed", extra={"instance_id": self.instance_id})
            sockets_every = max(0.2, min(1.0, self.idle_timeout / 4, self.max_duration / 4))
            supervisor = Supervisor()
            supervisor.start("relay", self.relay.run)
            supervisor.start("heartbeat", _every(self._beat_period, self._beat, "heartbeat", fixed_rate=True))
            supervisor.start("sweep", _every(self.interval / 4, self._sweep, "sweep"))
            supervisor.start("sockets", _every(sockets_every, self._look_after_sockets, "socket limits"))
            self.supervisor = supervisor

    def healthy(self) -> bool:
        """Liveness: every duty runs and the event loop keeps time."""
        return self.supervisor is not None and self.supervisor.healthy()

    def lapsed(self) -> bool:
        """
        Whether the last heartbeat this process wrote has run out: the others
        may take it for dead and sweep its connections (it is cut off from
        DynamoDB, or too slow). It takes no one new until a heartbeat lands.
        """
        return self.alive_until is not None and time.time() >= self.alive_until

    def _beat_period(self) -> float:
        # Lapsed, it tries four times as often, so that it is back soon after its link heals.
        return self.interval / 4 if self.lapsed() else self.interval

    async def _beat(self) -> None:
        verify = self._verify_beats > 0
        self._verify_beats = max(0, self._verify_beats - 1)
        # The first heartbeat finds no item of this process because it is new, not
        # because it was swept: it holds no socket yet, so there is nothing to check.
        first, self._first_beat = self._first_beat, False
        promised = time.time() + self.interval * services.STALE_AFTER_INTERVALS
        try:
            swept = await services.instance_heartbeat(
                instance_id=self.instance_id,
                interval=self.interval,
                held=lambda: [socket.connection for socket in self.sockets.values() if not socket.drained],
                still_held=self._holds,
                verify=verify,
                rooms=self.relay.served_rooms,
            )
        except BaseException:
            # Set only once a beat has failed, never while one is on its way: a process held up
            # (SIGSTOP) whose next beat is in flight when it resumes must not let its sockets go.
            self.beat_failed = True
            raise
        self.beat_failed = False
        back = self.lapsed()
        self.alive_until = promised
        if back:
            logger.warning("heartbeat written again after it lapsed", extra={"instance_id": self.instance_id})
        if self.let_go:  # kept until done: a failure here is tried again at the next beat
            await services.connections_let_go(connections=self.let_go)
            self.let_go = []
        if swept and not first:
            self._verify_beats = VERIFY_BEATS

    def _holds(self, connection_id: str) -> bool:
        """Whether this process holds that socket and keeps it: a drained one's registry item is the drain's."""
        socket = self.sockets.get(connection_id)
        return socket is not None and not socket.drained

    async def _sweep(self) -> None:
        if not self.draining:
            await services.instance_sweep(instance_id=self.instance_id, interval=self.interval)

    async def _look_after_sockets(self) -> None:
        """
        Close sockets past their limits; record recent activity (at most once
        a minute each). Let every socket go once the heartbeat has lapsed
        because it could not be written (not merely because this process was
        held up: then the next heartbeat puts back what a sweep took).
        """
        if self.lapsed() and self.beat_failed and not self.draining:
            await self._let_go_of_sockets()
            return
        now = time.monotonic()
        touches = []
        for socket in list(self.sockets.values()):
            recent = socket.active_at and socket.last_active > socket.recorded_at
            if recent and now - socket.recorded_at >= protocol.LAST_ACTIVE_INTERVAL:
                socket.recorded_at = now
                moment = protocol.iso_timestamp(datetime.fromtimestamp(socket.active_at, UTC))
                touches.append(services.connection_touch(connection_id=socket.connection_id, moment=moment))
            if now >= socket.ends_at:
                await socket.close_with(
                    protocol.CLOSE_MAX_DURATION,
                    protocol.MAX_DURATION,
                    f"Connections last at most {_span(self.max_duration)}; reconnect to carry on.",
                )
            elif now - socket.last_active >= self.idle_timeout:
                await socket.close_with(
                    protocol.CLOSE_IDLE,
                    protocol.IDLE_TIMEOUT,
                    f"Closed after {_span(self.idle_timeout)} without activity; reconnect to carry on.",
                )
        await asyncio.gather(*touches)

    async def _let_go_of_sockets(self) -> None:
        """
        The heartbeat has lapsed, so the other processes may have swept this
        one's connections and told their rooms they left: rather than keep
        sockets that look alive to their people and gone to everyone else,
        tell each what is wrong (``server_unavailable``) and close it (1011),
        so that it reconnects, to another process or to this one once it is
        back. Their registry items are the sweep's to remove, or, if no sweep
        came, the first heartbeat that lands again (``let_go``): nothing here
        waits on a DynamoDB that does not answer.
        """
        sockets = [socket for socket in self.sockets.values() if not socket.drained]
        if not sockets:
            return
        logger.error(
            "heartbeat lapsed: letting every socket go",
            extra={"instance_id": self.instance_id, "sockets": len(sockets)},
        )
        for socket in sockets:
            socket.drained = True
            self.let_go.append(socket.connection)
            try:
                await socket.close_with(
                    protocol.CLOSE_SERVER_ERROR,
                    protocol.SERVER_UNAVAILABLE,
                    "This server lost touch with the rest of the chat; reconnecting you.",
                )
            except Exception:
                logger.warning("could not close a socket", exc_info=True, extra={"connection_id": socket.connection_id})

    async def drain(self, seconds: float) -> None:
        """
        Leave cleanly (SIGTERM): refuse new sockets and fail readiness at
        once; tell every socket to reconnect elsewhere (``server_restart``,
        then 1012), each at a random moment of the first ``DRAIN_SPREAD`` of
        ``seconds`` so their reconnects arrive smoothly; remove their registry
        items in batches and tell their rooms; delete the heartbeat. Returns
        within ``seconds`` plus the time DynamoDB takes to answer.
        """
        if self.draining:
            return
        self.draining = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        sockets = list(self.sockets.values())
        logger.info("draining", extra={"instance_id": self.instance_id, "sockets": len(sockets), "seconds": seconds})
        moments = sorted(random.uniform(0, seconds * DRAIN_SPREAD) for _ in sockets)
        random.shuffle(sockets)
        closed: list[LocalSocket] = []
        last_batch = started
        for socket, moment in zip(sockets, moments, strict=True):
            delay = started + moment - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            closed.append(socket)
            await self._tell_to_reconnect(socket)
            if loop.time() - last_batch >= DRAIN_BATCH_EVERY:
                closed, last_batch = await self._retire(closed), loop.time()
        # Whatever connected while the drain began.
        for socket in [s for s in self.sockets.values() if s not in sockets]:
            closed.append(socket)
            await self._tell_to_reconnect(socket)
        await self._retire(closed)
        if self.supervisor is not None:
            await self.supervisor.stop(["heartbeat", "sweep", "sockets"])
        try:
            await services.instance_retire(instance_id=self.instance_id)
        except Exception:
            logger.exception("heartbeat not removed; the sweep takes it", extra={"instance_id": self.instance_id})
        logger.info("drained", extra={"instance_id": self.instance_id, "seconds": round(loop.time() - started, 2)})

    async def _tell_to_reconnect(self, socket: LocalSocket) -> None:
        socket.drained = True
        try:
            await socket.close_with(
                protocol.CLOSE_SERVICE_RESTART,
                protocol.SERVER_RESTART,
                "This server is restarting; reconnecting you to another one.",
            )
        except Exception:
            logger.warning(
                "drain could not close a socket", exc_info=True, extra={"connection_id": socket.connection_id}
            )

    async def _retire(self, closed: list[LocalSocket]) -> list[LocalSocket]:
        """Remove the closed sockets' registry items in one batch call and tell their rooms; returns []."""
        if closed:
            try:
                await services.connections_retire(sockets=closed)
            except Exception:
                logger.exception("drained connections not removed; the sweep takes them", extra={"count": len(closed)})
        return []


def _every(
    period: float | Callable[[], float], duty: Callable[[], Awaitable[object]], name: str, *, fixed_rate: bool = False
):
    """
    A loop running ``duty`` every ``period`` seconds (a number, or a function
    asked before each wait): counted from one start to the next with
    ``fixed_rate`` (a slow duty does not push the next one later), else as a
    pause after each. A failure is logged and the loop goes on.
    """
    seconds = period if callable(period) else lambda: period

    async def loop() -> None:
        clock = asyncio.get_running_loop()
        next_at = clock.time() + seconds()
        while True:
            await asyncio.sleep(max(0.0, next_at - clock.time()) if fixed_rate else seconds())
            next_at += seconds()
            if next_at < clock.time():  # the loop was held up (the process stopped): carry on from now
                next_at = clock.time() + seconds()
            try:
                await duty()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s failed; trying again in %.1f s", name, seconds())

    return loop


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
