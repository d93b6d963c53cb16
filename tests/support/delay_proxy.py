"""
A TCP proxy that adds latency, for links where the kernel cannot (no
``netem``): every chunk read from one side is written to the other
``--delay`` seconds after it arrived, in order, each way. It starts with
no delay; SIGUSR1 turns the delay on and SIGUSR2 off, and each change is
written to ``--state`` so a test knows it took effect.

    python -m tests.support.delay_proxy --delay 0.05 --state /tmp/state \\
        --forward 10.231.7.10:7379=127.0.0.1:6379 --forward 10.231.7.10:9000=127.0.0.1:8000

``DelayProxy`` runs it (on a test host) and switches it.
"""

import argparse
import asyncio
import functools
import signal
import sys
from pathlib import Path

from .processes import ManagedProcess, port_open, wait_until

CHUNK = 65536


class Link:
    def __init__(self, delay: float, state: Path) -> None:
        self.delay = 0.0
        self.on_delay = delay
        self.state = state
        self.write_state()

    def switch(self, on: bool) -> None:
        self.delay = self.on_delay if on else 0.0
        self.write_state()

    def write_state(self) -> None:
        self.state.write_text(f"{self.delay}")


async def _carry(link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction: read as it comes, write each chunk when its delay is up; EOF passed on after the data."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def write() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    writing = asyncio.create_task(write())
    try:
        while True:
            data = await reader.read(CHUNK)
            queue.put_nowait((loop.time() + link.delay, data))
            if not data:
                break
        await writing
    except (ConnectionError, OSError):
        writing.cancel()


async def _serve(link: Link, target: tuple[str, int], reader, writer) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
    except OSError:
        writer.close()
        return
    try:
        await asyncio.gather(_carry(link, reader, upstream_writer), _carry(link, upstream_reader, writer))
    finally:
        for side in (writer, upstream_writer):
            side.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main(args: argparse.Namespace) -> None:
    link = Link(args.delay, Path(args.state))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, link.switch, True)
    loop.add_signal_handler(signal.SIGUSR2, link.switch, False)
    servers = []
    for pair in args.forward:
        listen, _, target = pair.partition("=")
        host, port = _address(listen)
        serve = functools.partial(_serve, link, _address(target))
        servers.append(await asyncio.start_server(serve, host, port, reuse_address=True))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


class DelayProxy:
    """The proxy as a process (``wrap`` runs it on a test host), with ``delay()`` and ``no_delay()`` switches."""

    def __init__(self, forwards: dict[tuple[str, int], tuple[str, int]], *, delay: float, state: Path, wrap=list):
        self.forwards = forwards
        self.on_delay = delay
        self.state = state
        argv = [sys.executable, "-m", "tests.support.delay_proxy", "--delay", str(delay), "--state", str(state)]
        for (host, port), (to_host, to_port) in forwards.items():
            argv += ["--forward", f"{host}:{port}={to_host}:{to_port}"]
        self.process = ManagedProcess("delay-proxy", wrap(argv))

    def start(self, timeout: float = 20) -> "DelayProxy":
        self.process.start()
        self.process.wait_ready(lambda: all(port_open(port, host) for host, port in self.forwards), timeout=timeout)
        return self

    def _switch(self, sig: int, delay: float) -> None:
        self.process.process.send_signal(sig)
        wait_until(lambda: float(self.state.read_text() or "-1") == delay, timeout=10, what=f"a delay of {delay} s")

    def delay(self) -> None:
        """Every chunk from now on arrives ``delay`` seconds late, each way."""
        self._switch(signal.SIGUSR1, self.on_delay)

    def no_delay(self) -> None:
        self._switch(signal.SIGUSR2, 0.0)

    def stop(self) -> None:
        self.process.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, required=True, help="seconds each chunk is held, each way, when on")
    parser.add_argument("--state", required=True, help="a file the current delay is written to")
    parser.add_argument("--forward", action="append", required=True, help="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    asyncio.run(main(parser.parse_args()))
