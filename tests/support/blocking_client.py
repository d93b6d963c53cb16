"""A chat client for tests that are plain functions (``websockets``' blocking API), with bounded waits."""

import json
from contextlib import ExitStack
from typing import Any
from urllib.parse import quote

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

WAIT = 10.0


class BlockingChatClient:
    def __init__(self, ws_url: str, room: str, name: str, user_agent: str = "ops-test/1.0") -> None:
        self._stack = ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(
                f"{ws_url}/ws/chat/{room}/?name={quote(name)}",
                open_timeout=WAIT,
                additional_headers={"User-Agent": user_agent},
            )
        )
        self.welcome = self.receive()
        assert self.welcome["type"] == "welcome", self.welcome
        self.connection_id: str = self.welcome["connectionId"]

    def receive_text(self, timeout: float = WAIT) -> str:
        return self.ws.recv(timeout=timeout)

    def receive(self, timeout: float = WAIT) -> dict[str, Any]:
        return json.loads(self.receive_text(timeout))

    def receive_until(self, predicate, limit: int = 50) -> dict[str, Any]:
        """The first frame matching ``predicate`` among the next ``limit`` frames."""
        for _ in range(limit):
            frame = self.receive()
            if predicate(frame):
                return frame
        raise AssertionError(f"no matching frame among {limit}")

    def send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def say(self, text: str) -> dict[str, Any]:
        """Send a message and wait until the room echoes it back: its frame."""
        self.send({"action": "sendMessage", "message": text})
        return self.receive_until(lambda frame: frame["type"] == "message" and frame["message"] == text)

    def closed_with(self, limit: int = 50) -> tuple[int, list[str]]:
        """Wait for the server to close: its close code and the text frames that came first."""
        texts = []
        for _ in range(limit):
            try:
                texts.append(self.receive_text())
            except ConnectionClosed as closed:
                return (closed.rcvd.code if closed.rcvd else None), texts
        raise AssertionError(f"still open after {limit} frames")

    def close(self) -> None:
        self._stack.close()
