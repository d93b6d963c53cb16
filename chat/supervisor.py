"""
The one owner of this process's long-lived tasks: the room relay, the
heartbeat, the sweep, the socket limits, and a timer that measures how late
the event loop runs. A task that ends or dies is logged with its traceback
and started again after a backoff; ``/healthz`` reads ``Supervisor.healthy``.
Stopping is one call with a deadline.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from . import metrics

logger = logging.getLogger(__name__)

# Backoff between restarts of a task that keeps dying: doubling from the first to the last.
FIRST_RESTART_DELAY = 0.1
LAST_RESTART_DELAY = 5.0
# A task that ran this long before it died starts again at the first delay.
STEADY_AFTER = 30.0
# How often the loop timer ticks, and how late a tick may be before the loop counts as stuck.
TICK = 0.5
MAX_LOOP_LAG = 5.0

Duty = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Task:
    """One supervised task: what it runs, whether it runs now, how often it died."""

    name: str
    run: Duty
    task: asyncio.Task | None = None
    running: bool = False
    restarts: int = 0
    last_error: str = ""
    since: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.loop_lag = 0.0  # seconds the last timer tick came late
        self._last_tick = time.monotonic()
        self._stopping = False
        self.start("loop-timer", self._time_the_loop)

    def start(self, name: str, run: Duty) -> None:
        """Run ``run()`` as the task ``name`` until ``stop``, restarting it whenever it ends."""
        if name in self.tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        entry = self.tasks[name] = Task(name, run)
        entry.task = asyncio.get_running_loop().create_task(self._keep(entry), name=f"chat-{name}")

    async def _keep(self, entry: Task) -> None:
        delay = FIRST_RESTART_DELAY
        while not self._stopping:
            entry.running, entry.since = True, time.monotonic()
            try:
                await entry.run()
                entry.last_error = "returned"
                logger.error("background task %s returned; restarting in %.1f s", entry.name, delay)
            except asyncio.CancelledError:
                entry.running = False
                raise
            except Exception as error:
                entry.last_error = f"{type(error).__name__}: {error}"
                logger.exception("background task %s died; restarting in %.1f s", entry.name, delay)
            entry.running = False
            if self._stopping:
                break
            if time.monotonic() - entry.since > STEADY_AFTER:
                delay = FIRST_RESTART_DELAY
            await asyncio.sleep(delay)
            entry.restarts += 1
            delay = min(delay * 2, LAST_RESTART_DELAY)

    async def _time_the_loop(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK)
            self._last_tick = time.monotonic()
            self.loop_lag = max(0.0, self._last_tick - before - TICK)
            metrics.EVENT_LOOP_LAG.set(self.loop_lag)

    def stuck_for(self) -> float:
        """Seconds the loop timer is overdue (0 while it ticks on time)."""
        return max(0.0, time.monotonic() - self._last_tick - TICK)

    def state(self) -> dict[str, str]:
        """``{"relay": "running", "heartbeat": "restarting", ...}``"""
        return {name: "running" if entry.running else "restarting" for name, entry in self.tasks.items()}

    def healthy(self) -> bool:
        """True while every task runs and the event loop is not running late beyond ``MAX_LOOP_LAG``."""
        late = max(self.loop_lag, self.stuck_for())
        return not self._stopping and late < MAX_LOOP_LAG and all(e.running for e in self.tasks.values())

    async def stop(self, names: list[str] | None = None, *, within: float = 5.0) -> None:
        """Cancel the named tasks (all of them by default) and wait for them, at most ``within`` seconds."""
        chosen = [self.tasks[name] for name in names] if names is not None else list(self.tasks.values())
        if names is None:
            self._stopping = True
        for entry in chosen:
            self.tasks.pop(entry.name, None)
            if entry.task is not None:
                entry.task.cancel()
        pending = [entry.task for entry in chosen if entry.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=within)
