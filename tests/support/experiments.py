"""
Fault tests as experiments: a workload of clients that each record what they
saw, a fault done to real processes, and checkers that judge the recorded
histories as a whole.

- ``Recorder``: a chat client that keeps every frame it receives (and its close
  code) from a background task, so a test can wait on what it saw.
- ``RawSocket``: a WebSocket client on a plain TCP socket, for clients that
  misbehave on purpose (never read, never answer a close or a ping).
- ``Registry``: what DynamoDB Local holds for a room or a server process.
- checkers: ``joins_matched_by_leaves``, ``messages_exactly_once``.
"""

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from chat import protocol

from .clients import WAIT, ChatClient
from .processes import wait_until

Frame = dict[str, Any]


class Recorder:
    """A ``ChatClient`` whose frames are recorded as they arrive, with the close that ended it."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.frames: list[Frame] = []
        self.close_code: int | None = None
        self.closed_at: float | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def join(cls, base_url: str, room: str, name: str, **options) -> "Recorder":
        return cls(await ChatClient.join(base_url, room, name, **options))

    @property
    def connection_id(self) -> str:
        return self.client.connection_id

    @property
    def welcome(self) -> Frame:
        return self.client.welcome

    async def _read(self) -> None:
        try:
            async for text in self.client.ws:
                self.frames.append(json.loads(text))
                self._changed.set()
        except Exception:  # the connection ended; its close code says how
            pass
        self.close_code = self.client.ws.close_code
        self.closed_at = time.monotonic()
        self._changed.set()

    async def wait_for(self, predicate: Callable[["Recorder"], object], timeout: float = WAIT, what: str = "") -> Any:
        """Wait until ``predicate(self)`` is truthy; fail after ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (result := predicate(self)):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"{what or 'condition'} not seen in {timeout} s; saw {self.frames[-5:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue
        return result

    def of_type(self, kind: str) -> list[Frame]:
        return [frame for frame in self.frames if frame["type"] == kind]

    def messages(self) -> list[str]:
        """Texts of the ``message`` frames, in the welcome's history and live, as received."""
        return [m["message"] for m in self.welcome["history"]] + [m["message"] for m in self.of_type(protocol.MESSAGE)]

    def presence(self, event: str) -> list[str]:
        return [f["connectionId"] for f in self.of_type(protocol.PRESENCE) if f["event"] == event]

    async def close(self) -> None:
        await self.client.close()
        await asyncio.wait_for(self._task, WAIT)


def joins_matched_by_leaves(observer: Recorder, connection_ids: set[str] | None = None) -> dict[str, tuple[int, int]]:
    """
    The connections whose ``join`` and ``leave`` frames do not pair up, as
    the observer saw them: ``{connection id: (joins, leaves)}``; empty when
    every join has its leave and no leave came without a join.
    """
    joins, leaves = Counter(observer.presence(protocol.JOIN)), Counter(observer.presence(protocol.LEAVE))
    ids = (set(joins) | set(leaves)) if connection_ids is None else connection_ids
    return {cid: (joins[cid], leaves[cid]) for cid in ids if joins[cid] != leaves[cid]}


def messages_exactly_once(readers: list[Recorder], sent: list[str]) -> dict[str, list[str]]:
    """Per reader, what went wrong: a sent message missing or seen twice. Empty when all is well."""
    problems = {}
    for reader in readers:
        seen = Counter(text for text in reader.messages() if text in set(sent))
        wrong = [f"missing {t}" for t in sent if seen[t] == 0] + [f"twice {t}" for t in sent if seen[t] > 1]
        if wrong:
            problems[reader.connection_id] = wrong
    return problems


class Registry:
    """The connection registry as DynamoDB Local holds it (read consistently)."""

    def __init__(self, dynamodb_local) -> None:
        self.client = dynamodb_local.client()

    def has(self, connection_id: str) -> bool:
        key = {"connectionId": {"S": connection_id}}
        return "Item" in self.client.get_item(TableName="ChatConnections", Key=key, ConsistentRead=True)

    def room(self, room: str) -> set[str]:
        """Connection ids the room index lists for ``room`` (an index: eventually consistent)."""
        found: set[str] = set()
        params = {
            "TableName": "ChatConnections",
            "IndexName": "room-index",
            "KeyConditionExpression": "room = :room",
            "ExpressionAttributeValues": {":room": {"S": room}},
        }
        for _ in range(100):
            page = self.client.query(**params)
            found |= {item["connectionId"]["S"] for item in page["Items"]}
            if "LastEvaluatedKey" not in page:
                return found
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        raise AssertionError("room index pages did not end")

    def held_by(self, instance_id: str) -> set[str]:
        page = self.client.query(
            TableName="ChatConnections",
            IndexName="instance-index",
            KeyConditionExpression="instanceId = :instance",
            ExpressionAttributeValues={":instance": {"S": instance_id}},
        )
        return {item["connectionId"]["S"] for item in page["Items"]}

    def heartbeat(self, instance_id: str) -> dict | None:
        key = {"instanceId": {"S": instance_id}}
        return self.client.get_item(TableName="ChatInstances", Key=key, ConsistentRead=True).get("Item")

    def wait_for_room(self, room: str, expected: set[str], timeout: float = 20) -> None:
        wait_until(
            lambda: self.room(room) == expected, timeout=timeout, what=f"the registry of {room} to be {expected}"
        )


class RawSocket:
    """
    A WebSocket client on a plain TCP socket: it completes the handshake
    and then does only what the test says (read or not, answer or not).
    """

    def __init__(self, port: int, path: str, *, host: str = "127.0.0.1", receive_buffer: int | None = None) -> None:
        self.sock = socket.socket()
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(WAIT)
        self.sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])

    @staticmethod
    def chat_path(room: str, **query: str) -> str:
        return f"/ws/chat/{room}/" + (f"?{urlencode(query)}" if query else "")

    def read_frame(self) -> tuple[int, bytes]:
        """One frame from the server: (opcode, payload). Blocks up to the socket's timeout."""
        while True:
            frame = self._parse()
            if frame is not None:
                return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk

    def _parse(self) -> tuple[int, bytes] | None:
        data = self.buffer
        if len(data) < 2:
            return None
        opcode, length, offset = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                return None
            (length,), offset = struct.unpack(">H", data[2:4]), 4
        elif length == 127:
            if len(data) < 10:
                return None
            (length,), offset = struct.unpack(">Q", data[2:10]), 10
        if len(data) < offset + length:
            return None
        self.buffer = data[offset + length :]
        return opcode, data[offset : offset + length]

    def read_json(self) -> Frame:
        """The next text frame, decoded (control frames are passed over)."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == 0x1:
                return json.loads(payload)
            if opcode == 0x8:
                raise ConnectionError(f"closed by the server: {payload[:2].hex()}")

    def send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        header = bytes([0x81]) + (
            bytes([0x80 | len(payload)])
            if len(payload) < 126
            else bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        )
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self) -> None:
        self.sock.close()
