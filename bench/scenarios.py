"""
The scenarios, each run against the product, the baseline and the ceiling in
turn, each returning plain figures (numbers, lists) for the results file.
"""

import asyncio
import logging
import math
import time
import uuid
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import WebSocketException
from websockets.protocol import State

from tests.support.daphne import DaphneServer

from .figures import cdf_points, latency_summary
from .load import Workers, close_all, drain, open_socket, payload, room_url, send_request, source_address
from .servers import WELCOMES, Profiler, cpu_seconds, rss_kib

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is: the issue's sizes, or a quick run's."""

    storm_connections: int = 2000
    storm_concurrency: int = 50
    storm_room_size: int = 10
    fanout_members: tuple[int, ...] = (200, 1000)
    fanout_rate: float = 10.0
    fanout_seconds: float = 10.0
    many_rooms: int = 200
    many_room_members: int = 10
    many_rate: float = 1.0
    many_seconds: float = 10.0
    idle_steps: tuple[int, ...] = (1000, 5000, 10000)
    idle_room_size: int = 10
    scale_processes: tuple[int, ...] = (1, 2, 4)
    scale_members: int = 1000
    scale_rate: float = 40.0
    scale_seconds: float = 5.0
    # CHAT_DYNAMODB_MAX_WORKERS values tried on the connect storm.
    lever_workers: tuple[int, ...] = (4, 32, 128)
    # Generator processes for the members of a traffic scenario of this many members or more.
    split_generator_at: int = 500
    # Seconds after the last send during which deliveries still count.
    drain_seconds: float = 15.0
    # The many-sockets scenario: this many idle sockets at once (rooms of idle_room_size) ...
    sockets: int = 50000
    # ... at most this many per server process and per generator process (each may open
    # 20,000 files here), each generator process from a source address of its own.
    sockets_per_process: int = 12500
    sockets_concurrency: int = 100
    # Round trips through each server's probe while the sockets sit: pings, and messages to its own room.
    sockets_pings: int = 100
    sockets_echoes: int = 50


FULL = Sizes()
QUICK = Sizes(
    storm_connections=60,
    storm_concurrency=20,
    fanout_members=(20, 60),
    fanout_rate=10.0,
    fanout_seconds=1.5,
    many_rooms=6,
    many_room_members=4,
    many_seconds=2.0,
    idle_steps=(40, 100),
    scale_processes=(1, 2),
    scale_members=40,
    scale_rate=20.0,
    scale_seconds=1.5,
    lever_workers=(4, 32),
    split_generator_at=50,
    drain_seconds=8.0,
    sockets=200,
    sockets_pings=20,
    sockets_echoes=10,
)
# A connect storm counts its completed connects in this many bins of equal width (connect_rate_per_s).
RATE_BINS = 20


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}"


def pid(server: DaphneServer) -> int:
    return server.process.process.pid


async def connect_storm(server: DaphneServer, kind: str, *, sizes: Sizes, one_room: bool) -> dict[str, Any]:
    """N new connections, C at a time, into rooms of ``storm_room_size`` or all into one room."""
    count, welcome = sizes.storm_connections, kind in WELCOMES
    base = unique("storm")
    gate = asyncio.Semaphore(sizes.storm_concurrency)
    sockets: list[ClientConnection] = []
    readers: list[asyncio.Task] = []
    latencies: list[float] = []
    completions: list[float] = []
    failures = 0
    cpu_before = cpu_seconds(pid(server))
    profiler = Profiler(server, f"{server.name}-storm-{'one-room' if one_room else 'rooms'}", seconds=5)
    start = time.monotonic()
    bar = tqdm(total=count, desc=f"connect storm {kind}{' one room' if one_room else ''}", leave=False, unit="conn")

    async def one(index: int) -> None:
        nonlocal failures
        room = base if one_room else f"{base}-{index // sizes.storm_room_size}"
        async with gate:
            began = time.monotonic()
            try:
                ws = await open_socket(room_url(server.ws_url, room, f"c{index}"), welcome=welcome)
            except Exception:
                failures += 1
                bar.update()
                return
            now = time.monotonic()
        latencies.append((now - began) * 1000.0)
        completions.append(now - start)
        sockets.append(ws)
        readers.append(asyncio.create_task(drain(ws)))
        bar.update()

    try:
        await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(pid(server)) - cpu_before
        rss = rss_kib(pid(server))
    finally:
        profiler.stop()
        bar.close()
        await close_all(sockets)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    width = round(max(elapsed, 0.02) / RATE_BINS, 4)
    return {
        "connections": count,
        "concurrency": sizes.storm_concurrency,
        "room_size": count if one_room else sizes.storm_room_size,
        "connected": len(sockets),
        "failures": failures,
        "seconds": round(elapsed, 3),
        "connections_per_s": round(len(sockets) / elapsed, 1),
        "connect_latency_ms": latency_summary(latencies),
        "server_cpu_percent": round(100 * cpu / elapsed, 1),
        "server_rss_kib": rss,
        "timeline_s": cdf_points(sorted(completions)),
        "connect_rate_bin_s": width,
        "connect_rate_per_s": rate_per_bin(completions, width),
        "profile": profiler.path,
    }


def rate_per_bin(times: list[float], width: float) -> list[float]:
    """Events per second in consecutive bins of ``width`` seconds from 0 to the last of ``times``."""
    counts = [0] * (int(max(times, default=0) // width) + 1) if times else []
    for at in times:
        counts[int(at // width)] += 1
    return [round(count / width, 1) for count in counts]


async def _send_stream(ws: ClientConnection, sender: int, count: int, rate: float, start: float) -> int:
    """Send ``count`` messages at ``rate`` a second from ``start`` (pacing is the load); returns how many went."""
    sent = 0
    for seq in range(count):
        delay = start + seq / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await ws.send(send_request(payload(sender, seq)))
        except Exception:
            break
        sent += 1
    return sent


async def traffic(
    servers: list[DaphneServer],
    kind: str,
    *,
    rooms: int,
    members: int,
    rate: float,
    seconds: float,
    sizes: Sizes,
    label: str,
) -> dict[str, Any]:
    """
    ``rooms`` rooms of ``members`` members (spread over ``servers`` in turn),
    and one more socket per room, on the first server, sending ``rate``
    messages a second for ``seconds``. Every member should get every message
    of its room once, in order.
    """
    welcome = kind in WELCOMES
    names = [unique(f"{label}-{r}") for r in range(rooms)]
    urls, index = [], 0
    for r, room in enumerate(names):
        for m in range(members):
            urls.append(room_url(servers[index % len(servers)].ws_url, room, f"m{r}-{m}"))
            index += 1
    planned = int(rate * seconds)
    total = rooms * members
    processes = 2 if total >= sizes.split_generator_at else 1
    workers = Workers(urls, processes=processes, welcome=welcome, planned=planned)
    senders: list[ClientConnection] = []
    readers: list[asyncio.Task] = []
    profiler = Profiler(None, label)
    try:
        connected, failed = await workers.start()
        gate = asyncio.Semaphore(20)

        async def sender(r: int) -> ClientConnection:
            async with gate:
                return await open_socket(room_url(servers[0].ws_url, names[r], f"sender{r}"), welcome=welcome)

        senders = list(await asyncio.gather(*(sender(r) for r in range(rooms))))
        readers = [asyncio.create_task(drain(ws)) for ws in senders]
        pids = [pid(s) for s in servers]
        cpu_before = [cpu_seconds(p) for p in pids]
        start = time.monotonic() + 0.2
        profiler = Profiler(servers[0], f"{servers[0].name}-{label}", seconds=seconds)
        sent = await asyncio.gather(
            *(_send_stream(ws, r, planned, rate, start + r / (rooms * rate)) for r, ws in enumerate(senders))
        )
        results = await workers.results(within=sizes.drain_seconds)
        end = time.monotonic()
        cpu = [cpu_seconds(p) - before for p, before in zip(pids, cpu_before, strict=True)]
        rss = [rss_kib(p) for p in pids]
    finally:
        profiler.stop()
        workers.stop()
        await close_all(senders)
        for reader in readers:
            reader.cancel()
        sender_errors = sum(r for r in await asyncio.gather(*readers, return_exceptions=True) if isinstance(r, int))
    latencies = array("d")
    for result in results:
        latencies.frombytes(result["latencies_ms"])
    received = sum(r["received"] for r in results)
    duplicates = sum(r["duplicates"] for r in results)
    distinct = received - duplicates
    expected = sum(sent) * members
    last = max((r["last"] for r in results if r["last"]), default=start)
    elapsed = max(1e-9, last - start)
    return {
        "rooms": rooms,
        "members_per_room": members,
        "members": total,
        "server_processes": len(servers),
        "generator_processes": processes,
        "rate_per_room": rate,
        "seconds": seconds,
        "connected": connected,
        "connect_failures": failed,
        "messages_planned": planned * rooms,
        "messages_sent": sum(sent),
        "sender_error_frames": sender_errors,
        "deliveries_expected": expected,
        "deliveries_received": received,
        "deliveries_distinct": distinct,
        "lost": expected - distinct,
        "loss_percent": round(100 * (expected - distinct) / expected, 3) if expected else None,
        "duplicates": duplicates,
        "out_of_order": sum(r["out_of_order"] for r in results),
        "members_closed": sum(sum(r["closed"].values()) for r in results),
        "latency_ms": {k: (round(v, 2) if v is not None else None) for k, v in latency_summary(latencies).items()},
        "latency_cdf_ms": [round(v, 2) for v in cdf_points(latencies)],
        "deliveries_per_s": round(received / elapsed, 1),
        "server_cpu_percent": round(100 * sum(cpu) / (end - start), 1),
        "server_cpu_percent_per_process": [round(100 * c / (end - start), 1) for c in cpu],
        "server_rss_kib": sum(rss),
        "generator_cpu_percent_per_process": [round(100 * r["cpu_seconds"] / (end - start), 1) for r in results],
        "profile": profiler.path,
    }


async def _round_trips(probe: ClientConnection, count: int, *, echo: bool, welcome: bool) -> list[float]:
    """``count`` WebSocket pings (or messages to the probe's own room and back), in ms."""
    times = []
    for seq in range(count):
        began = time.monotonic()
        if echo:
            text = payload(0, seq)
            await probe.send(send_request(text))
            for _ in range(100):  # bounded: each frame waits at most 10 s, and ours comes among the first few
                if text in await asyncio.wait_for(probe.recv(), 10):
                    break
            else:
                raise RuntimeError("the probe's own message did not come back")
        else:
            pong = await probe.ping()
            await asyncio.wait_for(pong, 10)
        times.append((time.monotonic() - began) * 1000.0)
    return times


async def idle_capacity(server: DaphneServer, kind: str, *, sizes: Sizes) -> dict[str, Any]:
    """Idle sockets in steps on one fresh process: its memory per socket, and round trips through it."""
    welcome = kind in WELCOMES
    base = unique("idle")
    probe = await open_socket(room_url(server.ws_url, unique("probe"), "probe"), welcome=welcome)
    await _round_trips(probe, 3, echo=True, welcome=welcome)  # warm: first message paths loaded
    rss_before = rss_kib(pid(server))
    sockets: list[ClientConnection] = []
    failures = 0
    steps = []
    gate = asyncio.Semaphore(100)

    async def one(index: int) -> None:
        nonlocal failures
        async with gate:
            try:
                url = room_url(server.ws_url, f"{base}-{index // sizes.idle_room_size}", f"i{index}")
                sockets.append(await open_socket(url, welcome=welcome))
            except Exception:
                failures += 1

    try:
        opened = 0
        for step in sizes.idle_steps:
            began = time.monotonic()
            with tqdm(total=step - opened, desc=f"idle {kind} to {step}", leave=False, unit="conn") as bar:

                async def counted(index: int, bar=bar) -> None:
                    await one(index)
                    bar.update()

                await asyncio.gather(*(counted(i) for i in range(opened, step)))
            connect_seconds = time.monotonic() - began
            opened = step
            rss = rss_kib(pid(server))
            ping = sorted(await _round_trips(probe, 20, echo=False, welcome=welcome))
            echo = sorted(await _round_trips(probe, 10, echo=True, welcome=welcome))
            steps.append(
                {
                    "connections": len(sockets),
                    "failures": failures,
                    "connect_seconds": round(connect_seconds, 2),
                    "rss_kib": rss,
                    "rss_per_connection_kib": round((rss - rss_before) / max(1, len(sockets)), 2),
                    "ping_ms": latency_summary(ping),
                    "echo_ms": latency_summary(echo),
                }
            )
    finally:
        await close_all([*sockets, probe])
    return {"rss_before_kib": rss_before, "room_size": sizes.idle_room_size, "steps": steps}


# How often a many-sockets member tries to connect, a second and then two apart, as the page
# reconnects after a failure; failed_attempts counts every failed try by what it met.
SOCKET_ATTEMPTS = 3


def sockets_processes(sizes: Sizes) -> int:
    """Server (and generator) processes for the many-sockets scenario: two at least, more as the file limit asks."""
    return max(2, math.ceil(sizes.sockets / sizes.sockets_per_process))


async def many_sockets(
    servers: list[DaphneServer],
    kind: str,
    *,
    sizes: Sizes,
    registered: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """
    ``sizes.sockets`` idle sockets at once, spread over ``servers`` (fresh
    processes) and over as many generator processes, each from a source
    address of its own. Once all are open: the servers' memory per socket,
    how many the registry holds (``registered``, the product's only; it
    counts the probes too, which are taken off), and round trips through a
    probe socket on each server while the others sit; at the end, how many
    the servers closed meanwhile (``dropped``).
    """
    welcome = kind in WELCOMES
    count, base = sizes.sockets, unique("sockets")
    probes: list[ClientConnection] = []
    workers: Workers | None = None
    try:
        for server in servers:  # one probe per process, warm: its first message paths loaded
            probes.append(await open_socket(room_url(server.ws_url, unique("probe"), "probe"), welcome=welcome))
            await _round_trips(probes[-1], 3, echo=True, welcome=welcome)
        pids = [pid(s) for s in servers]
        rss_before = [rss_kib(p) for p in pids]
        cpu_before = [cpu_seconds(p) for p in pids]
        urls = [
            room_url(servers[i % len(servers)].ws_url, f"{base}-{i // sizes.idle_room_size}", f"s{i}")
            for i in range(count)
        ]
        generators = sockets_processes(sizes)
        sources = [source_address(index) for index in range(generators)]
        workers = Workers(
            urls,
            processes=generators,
            welcome=welcome,
            planned=0,
            concurrency=sizes.sockets_concurrency,
            sources=sources,
            attempts=SOCKET_ATTEMPTS,
        )
        began = time.monotonic()
        connected, failed = await workers.start()
        connect_seconds = time.monotonic() - began
        cpu = sum(cpu_seconds(p) for p in pids) - sum(cpu_before)
        held = None
        if registered is not None:
            held = await _registered(registered, connected + len(probes)) - len(probes)
        rss = [rss_kib(p) for p in pids]
        ping, echo, probes_dropped = await _probe_all(probes, servers, sizes=sizes, welcome=welcome)
        results = await workers.results(within=0)
    finally:
        if workers is not None:
            workers.stop()
        await close_all(probes)
    closed: dict[int | None, int] = {}
    for result in results:
        for code, n in result["closed"].items():
            closed[code] = closed.get(code, 0) + n
    return {
        "sockets": count,
        "server_processes": len(servers),
        "generator_processes": generators,
        "source_addresses": sources,
        "room_size": sizes.idle_room_size,
        "connected": connected,
        "failures": failed,
        "connect_attempts": SOCKET_ATTEMPTS,
        "connects_retried": workers.retried,
        "failed_attempts": workers.failure_reasons,
        # Sockets the server closed while they sat, and with which close codes ([code, count]; None: no close frame).
        "dropped": sum(closed.values()),
        "dropped_close_codes": sorted(([code, n] for code, n in closed.items()), key=lambda pair: -pair[1]),
        "registered": held,
        "connect_seconds": round(connect_seconds, 2),
        "connections_per_s": round(connected / connect_seconds, 1),
        "server_cpu_percent": round(100 * cpu / connect_seconds, 1),
        "rss_before_kib": rss_before,
        "rss_kib": rss,
        "rss_per_socket_kib": round((sum(rss) - sum(rss_before)) / max(1, connected), 2),
        "ping_ms": latency_summary(ping),
        "echo_ms": latency_summary(echo),
        "probes_dropped": probes_dropped,
    }


async def _probe_all(
    probes: list[ClientConnection], servers: list[DaphneServer], *, sizes: Sizes, welcome: bool
) -> tuple[list[float], list[float], int]:
    """
    Pings and echoes through each server's probe: (pings, echoes, probes
    dropped). A probe the server closed is counted and replaced once by a new one.
    """
    ping: list[float] = []
    echo: list[float] = []
    dropped = 0
    for index, server in enumerate(servers):
        for _ in range(2):
            try:
                if probes[index].state is not State.OPEN:
                    dropped += 1
                    url = room_url(server.ws_url, unique("probe"), "probe")
                    probes[index] = await open_socket(url, welcome=welcome)
                ping += await _round_trips(probes[index], sizes.sockets_pings, echo=False, welcome=welcome)
                echo += await _round_trips(probes[index], sizes.sockets_echoes, echo=True, welcome=welcome)
                break
            except (WebSocketException, OSError) as error:
                logger.warning("a probe of %s failed: %s", server.name, error)
    return ping, echo, dropped


async def _registered(count: Callable[[], int], expected: int, within: float = 10) -> int:
    """The registry's count once it reaches ``expected``, or whatever it is after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        held = await asyncio.to_thread(count)
        if held >= expected or time.monotonic() > deadline:
            return held
        await asyncio.sleep(0.5)
