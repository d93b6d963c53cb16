"""A chat client over a real socket (the ``websockets`` library), with bounded waits."""

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect

WAIT = 10.0  # seconds any single expected frame may take


def chat_path(room: str | None = None, **query: str | None) -> str:
    """The socket path of ``room`` (the lobby when None) with the query parameters that are not None."""
    path = f"/ws/chat/{room}/" if room else "/ws/chat/"
    query = {key: value for key, value in query.items() if value is not None}
    return path + ("?" + urlencode(query) if query else "")


class ChatClient:
    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self.connection_id: str = welcome["connectionId"]
        self.name: str = welcome["name"]

    @classmethod
    async def join(
        cls,
        base_url: str,
        room: str | None = None,
        name: str | None = None,
        since: str | None = None,
        client_id: str | None = None,
        **connect_args,
    ) -> "ChatClient":
        path = chat_path(room, name=name, since=since, clientId=client_id)
        ws = await asyncio.wait_for(connect(base_url + path, **connect_args), WAIT)
        welcome = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert welcome["type"] == "welcome", welcome
        return cls(ws, welcome)

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    async def say(self, text: str) -> None:
        await self.send({"action": "sendMessage", "message": text})

    async def receive(self, timeout: float = WAIT) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def receive_until(self, predicate, timeout: float = WAIT) -> dict[str, Any]:
        """The first frame matching ``predicate``; frames before it are passed over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("no matching frame arrived in time")
            frame = await self.receive(remaining)
            if predicate(frame):
                return frame

    async def nothing_more(self, within: float = 0.5) -> list[dict[str, Any]]:
        """Frames that arrive within ``within`` seconds (a bounded look for anything unexpected)."""
        frames = []
        try:
            while True:
                frames.append(await self.receive(within))
        except TimeoutError:
            return frames

    async def close(self) -> None:
        await self.ws.close()
