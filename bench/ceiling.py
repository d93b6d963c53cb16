"""
The ceiling: about the least a chat server can do for the benchmark's load,
to show how near the product comes to it. One asyncio process with the
``websockets`` server and nothing else: no framework, no Redis, no registry,
no history. Rooms are a dict of sets of sockets; each message is encoded once
(orjson) and written to its room with ``websockets.broadcast``.

It speaks just enough of the product's wire protocol (``chat.protocol``'s
names) for the load generator (``bench/load.py``): ``/ws/chat/<room>/?name=``,
a ``welcome`` frame first, the ``sendMessage`` action, ``message`` frames
with the sender's text in ``message``, and ``error`` frames. Keep-alive
pings every 20 s as the product's (``CHAT_PING_INTERVAL``, ``_TIMEOUT``).

    python -m bench.ceiling --port 8001
"""

import argparse
import asyncio
import itertools
import logging
import re
import signal
import sys
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from chat import protocol

logger = logging.getLogger(__name__)

ROOM_PATH = re.compile(r"^/ws/chat/(?P<room>[^/]+)/?$")
# As the product's CHAT_PING_INTERVAL and CHAT_PING_TIMEOUT: idle sockets cost the same keep-alive.
PING_INTERVAL = 20
PING_TIMEOUT = 20
# As the product's CHAT_MAX_FRAME_BYTES default.
MAX_FRAME_BYTES = 32 * 1024


class Rooms:
    """Every room of the process (name -> its open sockets), and the socket handler that joins them."""

    def __init__(self) -> None:
        self.rooms: dict[str, set[ServerConnection]] = {}
        self.ids = itertools.count(1)

    def route(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse any path but a room's before the handshake (``process_request``)."""
        if ROOM_PATH.match(urlsplit(request.path).path) is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "no such route: use /ws/chat/<room>/\n")
        return None

    async def handle(self, ws: ServerConnection) -> None:
        url = urlsplit(ws.request.path)
        room = unquote(ROOM_PATH.match(url.path)["room"])
        name = parse_qs(url.query).get("name", ["anonymous"])[0][: protocol.NAME_MAX_LENGTH]
        welcome = {"type": protocol.WELCOME, "connectionId": f"c{next(self.ids)}", "room": room, "name": name}
        members = self.rooms.setdefault(room, set())
        try:
            # The welcome goes out before the socket joins its room, so that it is the first frame, as the product's.
            await ws.send(orjson.dumps(welcome), text=True)
            members.add(ws)
            async for text in ws:
                await self.receive(ws, members, room, name, text)
        except ConnectionClosed:
            pass  # the client went without a close handshake: nothing to answer
        finally:
            members.discard(ws)
            if not members and self.rooms.get(room) is members:
                del self.rooms[room]

    async def receive(self, ws: ServerConnection, members: set[ServerConnection], room: str, name: str, text) -> None:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            await self.refuse(ws, protocol.BAD_JSON, "frames are JSON objects")
            return
        if not isinstance(request, dict) or protocol.ACTIONS.get(request.get("action")) != protocol.SEND_MESSAGE:
            await self.refuse(ws, protocol.UNKNOWN_ACTION, "the ceiling knows sendMessage only")
            return
        message = request.get("message")
        if not isinstance(message, str) or not message:
            await self.refuse(ws, protocol.INVALID_MESSAGE, "message must be a non-empty string")
            return
        frame = orjson.dumps({"type": protocol.MESSAGE, "room": room, "name": name, "message": message})
        broadcast(members, frame, text=True)

    @staticmethod
    async def refuse(ws: ServerConnection, code: str, message: str) -> None:
        await ws.send(orjson.dumps(protocol.error_frame(code, message)), text=True)


async def run(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    rooms = Rooms()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(
        rooms.handle,
        host,
        port,
        process_request=rooms.route,
        compression=None,
        max_size=MAX_FRAME_BYTES,
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
    ):
        logger.warning("ceiling listening on %s:%s", host, port)
        await stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    # WARNING, as the product runs in the bench (CHAT_LOG_LEVEL): websockets logs every connection at INFO.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    asyncio.run(run(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
