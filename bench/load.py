"""
The load generator: asyncio clients over real sockets (``websockets``), in
this process or in worker processes when one process cannot keep up.

Every sent message carries its sender, its sequence number and the time it
was sent (``time.monotonic()``, one clock for every process on this machine)
in its text; members measure at receipt. The product and the ceiling
answer a connection with a ``welcome`` frame; the baseline sends none, so a
baseline socket is ready once its handshake is done. All three send
``{"type": "message", "message": <text>}`` frames, which is all the members
read.

One source address has about 28,000 ephemeral ports (``ip_local_port_range``),
so a worker can bind its sockets to an address of its own on 127.0.0.0/8
(``127.0.0.2``, ...), all of which reach the servers on 127.0.0.1.
"""

import asyncio
import multiprocessing
import resource
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

# Seconds a single connect (handshake plus welcome) may take before it counts as failed.
CONNECT_TIMEOUT = 20.0
# Seconds a close may take before the socket is dropped.
CLOSE_TIMEOUT = 5.0


def raise_open_files() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def room_url(base: str, room: str, name: str) -> str:
    return f"{base}/ws/chat/{room}/?name={name}"


def source_address(index: int) -> str:
    """The ``index``-th loopback source address after 127.0.0.1: ``127.0.0.2``, ``127.0.0.3``, ..."""
    if not 0 <= index < 253:
        raise ValueError(f"no loopback source address {index}: 127.0.0.2 to 127.0.0.254 are used")
    return f"127.0.0.{2 + index}"


async def open_socket(url: str, *, welcome: bool, source: str | None = None) -> ClientConnection:
    """
    Connect, from ``source`` (a local address) if given; with ``welcome``,
    also wait for the welcome frame. Bounded by CONNECT_TIMEOUT.
    """
    bind = {"local_addr": (source, 0)} if source else {}

    async def opened() -> ClientConnection:
        ws = await connect(
            url, compression=None, ping_interval=None, max_queue=None, open_timeout=CONNECT_TIMEOUT, **bind
        )
        if welcome:
            frame = orjson.loads(await ws.recv())
            if frame.get("type") != "welcome":
                await ws.close()
                raise NotWelcomed(frame)
        return ws

    return await asyncio.wait_for(opened(), CONNECT_TIMEOUT)


def failure_reason(error: Exception) -> str:
    """What a failed connect met, in a few words: an HTTP status, a close code, a frame other than the welcome."""
    if isinstance(error, InvalidStatus):
        return f"HTTP {error.response.status_code}"
    if isinstance(error, ConnectionClosed):
        return f"closed {error.rcvd.code if error.rcvd else 'without a close frame'}"
    if isinstance(error, NotWelcomed):
        return f"{error.frame.get('type')} {error.frame.get('code', '')}".strip()
    return type(error).__name__


class NotWelcomed(Exception):
    """The first frame was not the welcome."""

    def __init__(self, frame: dict[str, Any]) -> None:
        super().__init__(f"expected a welcome frame, got {frame.get('type')!r}")
        self.frame = frame


async def drain(ws: ClientConnection) -> int:
    """Read and drop every frame until the socket closes; returns how many error frames came."""
    errors = 0
    try:
        async for text in ws:
            if '"type":"error"' in text:
                errors += 1
    except Exception:  # the socket went away: nothing more to read
        pass
    return errors


async def close_all(sockets: list[ClientConnection]) -> None:
    async def close(ws: ClientConnection) -> None:
        try:
            await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT)
        except Exception:  # closing is best effort: the process exit drops what is left
            pass

    for start in range(0, len(sockets), 500):
        await asyncio.gather(*(close(ws) for ws in sockets[start : start + 500]))


def payload(sender: int, seq: int) -> str:
    """A message text saying who sent it, its number, and when (this machine's monotonic clock)."""
    return f"{sender}|{seq}|{time.monotonic()!r}"


def send_request(text: str) -> str:
    """The ``sendMessage`` frame both servers understand."""
    return orjson.dumps({"action": "sendMessage", "message": text}).decode()


@dataclass
class Tally:
    """What the members of one worker received, and how many of their sockets the server closed."""

    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    finished_members: int = 0
    latencies_ms: array = field(default_factory=lambda: array("d"))
    first: float = 0.0
    last: float = 0.0
    # Member sockets closed before they were done (or, holding, before the stop), by close code.
    closed: dict[int | None, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "finished_members": self.finished_members,
            "latencies_ms": self.latencies_ms.tobytes(),
            "first": self.first,
            "last": self.last,
            "closed": dict(self.closed),
        }


async def receive_messages(ws: ClientConnection, planned: int, tally: Tally) -> bool:
    """
    Count a member's message frames until it has ``planned`` distinct ones
    (True) or the socket closes (False), or it is cancelled; with
    ``planned`` 0, read until cancelled.
    """
    seen: dict[str, set[int]] = {}
    last_seq: dict[str, int] = {}
    distinct = 0
    async for text in ws:
        now = time.monotonic()
        frame = orjson.loads(text)
        if frame.get("type") != "message":
            continue
        sender, seq_text, sent = frame["message"].split("|")
        seq = int(seq_text)
        tally.received += 1
        tally.latencies_ms.append((now - float(sent)) * 1000.0)
        tally.first = tally.first or now
        tally.last = now
        got = seen.setdefault(sender, set())
        if seq in got:
            tally.duplicates += 1
            continue
        got.add(seq)
        if seq < last_seq.get(sender, -1):
            tally.out_of_order += 1
        last_seq[sender] = max(seq, last_seq.get(sender, -1))
        distinct += 1
        if 0 < planned <= distinct:
            tally.finished_members += 1
            return True
    return False


async def _members(spec: dict[str, Any], pipe) -> dict[str, Any]:
    """A worker's members: connect them all, report, receive until done or told to stop."""
    gate = asyncio.Semaphore(spec["concurrency"])
    sockets: list[ClientConnection] = []
    tally = Tally()
    failed = 0
    all_tried = asyncio.Event()

    def tried() -> None:
        if len(sockets) + failed == len(spec["urls"]):
            all_tried.set()

    reasons: dict[str, int] = {}  # why connects failed, every attempt counted
    retried = 0  # members connected after a failed attempt

    async def member(url: str) -> None:
        nonlocal failed, retried
        for attempt in range(spec["attempts"]):
            if attempt:
                await asyncio.sleep(attempt)  # as the page does: a pause, longer each time
            async with gate:
                try:
                    ws = await open_socket(url, welcome=spec["welcome"], source=spec["source"])
                    break
                except Exception as error:
                    reason = failure_reason(error)
                    reasons[reason] = reasons.get(reason, 0) + 1
        else:
            failed += 1
            tried()
            return
        retried += attempt > 0
        sockets.append(ws)
        tried()
        try:
            done = await receive_messages(ws, spec["planned"], tally)
        except Exception:  # closed under it (its loss is counted by the parent)
            done = False
        if not done:
            tally.closed[ws.close_code] = tally.closed.get(ws.close_code, 0) + 1

    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(member(url)) for url in spec["urls"]]
    if tasks:
        try:
            await asyncio.wait_for(all_tried.wait(), spec["connect_timeout"])
        except TimeoutError:
            pass  # those not connected by now count as failed
    pipe.send(("connected", len(sockets), len(tasks) - len(sockets), reasons, retried))
    cpu_before = time.process_time()
    stop = loop.run_in_executor(None, pipe.recv)
    everyone = asyncio.ensure_future(asyncio.wait(tasks))
    await asyncio.wait([stop, everyone], return_when=asyncio.FIRST_COMPLETED)
    everyone.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(everyone, *tasks, return_exceptions=True)
    result = {**tally.as_dict(), "cpu_seconds": time.process_time() - cpu_before}
    pipe.send(("result", result))
    await stop  # the parent always says stop, which frees the reading thread
    await close_all(sockets)
    return result


def members_worker(spec: dict[str, Any], pipe) -> None:
    """Entry point of a worker process (multiprocessing, spawn)."""
    raise_open_files()
    asyncio.run(_members(spec, pipe))


class Workers:
    """
    Member sockets spread over worker processes. ``start`` connects them all;
    ``results`` waits (bounded) for what each received and stops them. With
    ``planned`` 0 the members only hold their sockets (reading what comes)
    until ``results``. ``sources``: each worker's own source address.
    """

    def __init__(
        self,
        urls: list[str],
        *,
        processes: int,
        welcome: bool,
        planned: int,
        concurrency: int = 50,
        sources: list[str] | None = None,
        attempts: int = 1,
    ) -> None:
        if sources is not None and len(sources) != processes:
            raise ValueError(f"{len(sources)} source addresses for {processes} worker processes: give one each")
        self.context = multiprocessing.get_context("spawn")
        self.failure_reasons: dict[str, int] = {}  # after start: why connect attempts failed
        self.retried = 0  # after start: members connected at a second or later attempt
        self.processes = []
        self.pipes = []
        for index in range(processes):
            mine = urls[index::processes]
            spec = {
                "urls": mine,
                "welcome": welcome,
                "planned": planned,
                "source": sources[index] if sources else None,
                "concurrency": max(1, concurrency // processes),
                "connect_timeout": 30 + len(mine) / 20 + 3 * (attempts - 1),
                "attempts": attempts,
            }
            parent, child = self.context.Pipe()
            process = self.context.Process(target=members_worker, args=(spec, child), daemon=True)
            self.processes.append((process, spec))
            self.pipes.append(parent)

    async def start(self) -> tuple[int, int]:
        """Start the workers and wait until each has connected its members; returns (connected, failed)."""
        for process, _ in self.processes:
            process.start()
        connected = failed = 0
        for pipe, (_, spec) in zip(self.pipes, self.processes, strict=True):
            message = await self._receive(pipe, spec["connect_timeout"] + 30)
            if message is None or message[0] != "connected":
                raise RuntimeError(f"a load worker did not connect its members: {message!r}")
            connected += message[1]
            failed += message[2]
            for reason, count in message[3].items():
                self.failure_reasons[reason] = self.failure_reasons.get(reason, 0) + count
            self.retried += message[4]
        return connected, failed

    async def results(self, within: float) -> list[dict[str, Any]]:
        """Each worker's tally: when all its members are done, or ``within`` seconds from now."""
        deadline = time.monotonic() + within
        results: list[dict[str, Any] | None] = [None] * len(self.pipes)
        for index, pipe in enumerate(self.pipes):
            message = await self._receive(pipe, max(0.0, deadline - time.monotonic()))
            if message is not None:
                results[index] = message[1]
        for pipe in self.pipes:
            pipe.send("stop")
        for index, pipe in enumerate(self.pipes):
            if results[index] is None:
                message = await self._receive(pipe, 30)
                if message is None:
                    raise RuntimeError("a load worker sent no result")
                results[index] = message[1]
        return results

    def stop(self) -> None:
        for process, _ in self.processes:
            if process.pid is None:
                continue
            process.join(timeout=15)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)

    @staticmethod
    async def _receive(pipe, within: float):
        if await asyncio.to_thread(pipe.poll, within):
            return pipe.recv()
        return None
