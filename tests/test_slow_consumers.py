"""
Clients that stop reading or stop answering cannot take the process down:
what the server holds unsent for one socket is capped (4008 past it), and
every socket is pinged on the server's schedule and dropped without a pong.
"""

import asyncio
import json
import os
import select
import socket
import struct
import time
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from chat import protocol

from .support.clients import ChatClient
from .support.experiments import RawSocket, Recorder, Registry

# Senders are not rate limited here, and messages are ~15 KB, so a room fills a kernel buffer in seconds.
FAST_ROOM = {"CHAT_RATE_LIMIT_PER_SECOND": "1000", "CHAT_RATE_LIMIT_BURST": "1000", "CHAT_MAX_MESSAGE_LENGTH": "16000"}
FILLER = "x" * 15_000
RATE = 25  # messages a second
PING, PONG, CLOSE = 0x9, 0xA, 0x8
CHECKER = 2  # seconds between daphne's looks at its sockets


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def dropped(raw: RawSocket) -> bool:
    """True once the server has reset or closed the connection, looked at without reading from it."""
    poller = select.poll()
    poller.register(raw.sock, select.POLLERR | select.POLLHUP | select.POLLRDHUP)
    return any(events & (select.POLLERR | select.POLLHUP | select.POLLRDHUP) for _, events in poller.poll(0))


def send_pong(raw: RawSocket, payload: bytes) -> None:
    mask = os.urandom(4)
    header = struct.pack("!BB", 0x80 | PONG, 0x80 | len(payload))
    raw.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


async def until(predicate, *, timeout: float, what: str):
    """``wait_until`` that lets the event loop run (the workload's tasks) between looks."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not seen after {timeout:.0f} s")
        await asyncio.sleep(0.05)
    return result


def joined_as(observer: Recorder, name: str) -> str | None:
    joins = [f for f in observer.of_type(protocol.PRESENCE) if f["event"] == protocol.JOIN and f["name"] == name]
    return joins[0]["connectionId"] if joins else None


class Sender:
    """Says ``RATE`` numbered messages of ~15 KB a second until stopped; ``sent`` is what it said, in order."""

    def __init__(self, member: Recorder) -> None:
        self.member = member
        self.sent: list[str] = []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            text = f"{len(self.sent):05d} {FILLER}"
            await self.member.client.say(text)
            self.sent.append(text)
            try:
                await asyncio.wait_for(self._stop.wait(), 1 / RATE)
            except TimeoutError:
                pass

    async def stop(self) -> list[str]:
        self._stop.set()
        await asyncio.wait_for(self._task, 10)
        return self.sent


async def test_clients_that_never_read_are_dropped_past_the_cap_and_the_room_carries_on(
    start_server, room, dynamodb_local
):
    """Proves: each is reset soon after passing the cap, memory stays bounded, the others miss nothing."""
    cap, stalled_count, close_timeout = 256 * 1024, 6, 3
    server = start_server(
        CHAT_MAX_OUTBOUND_BYTES=str(cap),
        CHAT_PING_TIMEOUT=str(close_timeout),
        CHAT_PING_INTERVAL="600",  # no ping drops anyone here: only the cap does
        **FAST_ROOM,
    )
    pid = server.process.process.pid
    registry = Registry(dynamodb_local)

    # Workload: two members who read everything, and clients that complete the handshake and never read again.
    reader = await Recorder.join(server.ws_url, room, "Reader")
    sender = await Recorder.join(server.ws_url, room, "Sender")
    names = [f"stalled-{index}" for index in range(stalled_count)]
    stalled = [
        await asyncio.to_thread(RawSocket, server.port, RawSocket.chat_path(room, name=name), receive_buffer=4096)
        for name in names
    ]
    await reader.wait_for(lambda r: all(joined_as(r, name) for name in names), what="the stalled clients' joins")
    ids = [joined_as(reader, name) for name in names]
    assert all(registry.has(cid) for cid in ids)
    rss_start = rss_bytes(pid)
    rss_peak = rss_start

    # The fault is theirs: they stop reading while the room talks. Watch the server's log, the sockets and RSS.
    talk = Sender(sender)
    warned: dict[int, float] = {}
    reset: dict[int, float] = {}
    deadline = time.monotonic() + 45
    while len(reset) < stalled_count and time.monotonic() < deadline:
        output, now = server.output(), time.monotonic()
        for index, raw in enumerate(stalled):
            if index not in warned and f"client=127.0.0.1:{raw.sock.getsockname()[1]}" in output:
                warned[index] = now
            if index not in reset and dropped(raw):
                reset[index] = now
        rss_peak = max(rss_peak, rss_bytes(pid))
        await asyncio.sleep(0.05)  # the poll's interval, bounded by the deadline above
    # A few more messages after the last drop: the room goes on.
    extra_from = len(talk.sent)
    await reader.wait_for(lambda r: len(r.messages()) > extra_from + 10, timeout=20, what="messages after the drops")
    sent = await talk.stop()
    rss_peak = max(rss_peak, rss_bytes(pid))

    growth = rss_peak - rss_start
    # Each may hold about the cap; the rest is headroom for the allocator and the room's recent messages.
    bound = stalled_count * 4 * cap + 32 * 1024 * 1024
    print(  # noqa: T201 (the figures this test measured, for the record)
        f"\nslow consumers: {stalled_count} stalled, cap {cap} B, {len(sent)} messages of {len(FILLER)} B; "
        f"RSS {rss_start / 2**20:.1f} MiB -> peak {rss_peak / 2**20:.1f} MiB (+{growth / 2**20:.1f} MiB, "
        f"bound +{bound / 2**20:.1f} MiB); reset {len(reset)}/{stalled_count} after the warning by "
        f"{[round(reset[i] - warned[i], 2) for i in sorted(reset) if i in warned]} s"
    )
    # Checkers: every stalled client was warned about and reset, soon after; memory stayed bounded.
    assert sorted(reset) == list(range(stalled_count)), f"not reset: {sorted(set(range(stalled_count)) - set(reset))}"
    assert sorted(warned) == list(range(stalled_count)), "a stalled client was dropped without the slow-consumer log"
    late = {i: reset[i] - warned[i] for i in reset if reset[i] - warned[i] > close_timeout + CHECKER}
    assert not late, f"reset later than the close timeout after passing the cap: {late}"
    assert growth < bound, f"RSS grew by {growth} B, over {bound} B"
    # Their registry items are gone and the room was told, through the consumer's own disconnect.
    await until(lambda: not any(registry.has(cid) for cid in ids), timeout=10, what="the stalled registry items gone")
    await reader.wait_for(lambda r: set(ids) <= set(r.presence(protocol.LEAVE)), what="the stalled leaves")
    # The members who read got every message, once, in order.
    for member in (reader, sender):
        await member.wait_for(lambda r: len(r.messages()) >= len(sent), timeout=20, what="every message")
        assert member.messages() == sent
    for raw in stalled:
        raw.close()
    await asyncio.gather(reader.close(), sender.close())


async def test_a_reader_that_falls_behind_is_told_and_recovers_everything_with_since(start_server, room):
    """Proves: a lagging client reads `slow_consumer` and 4008, and `?since=` (a welcome over the cap) fills the gap."""
    cap = 64 * 1024
    server = start_server(
        CHAT_MAX_OUTBOUND_BYTES=str(cap), CHAT_PING_TIMEOUT="15", CHAT_PING_INTERVAL="600", **FAST_ROOM
    )
    sender = await Recorder.join(server.ws_url, room, "Sender")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    # websockets stops reading the socket once 4 frames wait unread: this client falls behind.
    lagging = await ChatClient.join(server.ws_url, room, "Lagging", sock=sock, max_queue=4)
    talk = Sender(sender)
    port = sock.getsockname()[1]
    await until(lambda: f"client=127.0.0.1:{port}" in server.output(), timeout=30, what="the slow-consumer log")
    # Five more (75 KB) after the close: what the reader missed is surely more than the cap.
    after_close = len(talk.sent) + 5
    await until(lambda: len(talk.sent) >= after_close, timeout=30, what="five more messages after the close")
    sent = await talk.stop()
    await sender.wait_for(lambda r: len(r.messages()) >= len(sent), timeout=20, what="every message stored")

    # It reads again: what was already on its way, then why, then the close.
    frames = []
    try:
        while True:
            frames.append(await lagging.receive(timeout=10))
    except ConnectionClosed:
        pass
    assert frames[-1]["type"] == protocol.ERROR and frames[-1]["code"] == protocol.SLOW_CONSUMER, frames[-1]
    assert lagging.ws.close_code == protocol.CLOSE_SLOW_CONSUMER
    seen = [f for f in frames if f["type"] == protocol.MESSAGE]
    assert [f["message"] for f in seen] == sent[: len(seen)] and len(seen) < len(sent)

    # Reconnecting with ?since= brings the rest in the welcome, larger than the cap and delivered whole.
    back = await ChatClient.join(server.ws_url, room, "Lagging", since=seen[-1]["id"])
    recovered = [m["message"] for m in back.welcome["history"]]
    assert len(json.dumps(back.welcome)) > cap
    assert [f["message"] for f in seen] + recovered == sent
    await sender.client.say("still here?")
    await back.receive_until(lambda f: f["type"] == protocol.MESSAGE and f["message"] == "still here?")
    await asyncio.gather(back.close(), sender.close())


def keep_talking(raw: RawSocket, *, answer_pings: bool, deadline: float, enough_pings: int) -> tuple[int, float | None]:
    """
    A client that sends a frame every half second (well within the ping
    interval) and reads everything, answering pings or not. Returns the
    pings it saw and when the server dropped it (None: still open at
    ``deadline`` or after ``enough_pings``).
    """
    raw.sock.settimeout(0.5)
    pings, next_send = 0, 0.0
    try:
        while time.monotonic() < deadline and pings < enough_pings:
            if time.monotonic() >= next_send:
                raw.send_text(json.dumps({"action": protocol.SEND_MESSAGE, "message": "tick"}))
                next_send = time.monotonic() + 0.5
            try:
                opcode, payload = raw.read_frame()
            except TimeoutError:
                continue
            if opcode == PING:
                pings += 1
                if answer_pings:
                    send_pong(raw, payload)
            elif opcode == CLOSE:
                return pings, time.monotonic()
    except OSError:  # reset or closed by the server
        return pings, time.monotonic()
    return pings, None


async def test_every_socket_is_pinged_on_schedule_and_one_that_never_answers_is_dropped(start_server, room):
    """Proves: pings go out whatever the client sends; no pong within interval + timeout drops it, a pong keeps it."""
    interval, timeout = 2, 2
    server = start_server(CHAT_PING_INTERVAL=str(interval), CHAT_PING_TIMEOUT=str(timeout))
    silent = await asyncio.to_thread(RawSocket, server.port, RawSocket.chat_path(room, name="Silent"))
    polite = await asyncio.to_thread(RawSocket, server.port, RawSocket.chat_path(room, name="Polite"))
    opened = time.monotonic()
    # Dropped within interval + timeout, plus daphne's checker and some slack for two shared cores.
    within = interval + timeout + CHECKER + 2
    (silent_pings, silent_dropped), (polite_pings, polite_dropped) = await asyncio.gather(
        asyncio.to_thread(keep_talking, silent, answer_pings=False, deadline=opened + within, enough_pings=100),
        asyncio.to_thread(keep_talking, polite, answer_pings=True, deadline=opened + 4 * within, enough_pings=3),
    )
    assert silent_pings >= 1, "the silent client was never pinged while it kept sending"
    assert silent_dropped is not None, f"the silent client was still open {within} s after it connected"
    assert polite_pings == 3 and polite_dropped is None, (polite_pings, polite_dropped)
    assert "no pong within the ping timeout" in server.output()
    silent.close()
    polite.close()
