"""
A connection store in this process's memory, for a run with no DynamoDB.
It sees only the connections of this one process: fine on a laptop, wrong
for more than one server.
"""

import dataclasses
from typing import Any

from .base import Connection, ConnectionExists, ConnectionStore, Page, StoreError


class MemoryConnectionStore(ConnectionStore):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._connections: dict[str, Connection] = {}  # in insertion order

    async def add(self, connection: Connection) -> None:
        if connection.connection_id in self._connections:
            raise ConnectionExists(connection.connection_id)
        self._connections[connection.connection_id] = connection

    async def remove(self, connection_id: str) -> Connection | None:
        return self._connections.pop(connection_id, None)

    async def get(self, connection_id: str) -> Connection | None:
        return self._connections.get(connection_id)

    async def members(self, room: str, *, limit: int = 1000, cursor: str | None = None) -> Page:
        return self._page([c for c in self._connections.values() if c.room == room], limit, cursor)

    async def scan(self, *, limit: int = 100, cursor: str | None = None) -> Page:
        return self._page(list(self._connections.values()), limit, cursor)

    async def touch(self, connection_id: str, last_active_at: str) -> bool:
        connection = self._connections.get(connection_id)
        if connection is None:
            return False
        self._connections[connection_id] = dataclasses.replace(connection, last_active_at=last_active_at)
        return True

    async def count(self, room: str, *, limit: int = 10_000) -> int:
        return min(limit, sum(1 for c in self._connections.values() if c.room == room))

    @staticmethod
    def _page(items: list[Connection], limit: int, cursor: str | None) -> Page:
        if cursor and not cursor.isdigit():
            raise StoreError(f"cursor {cursor[:40]!r} is not one this store gave out")
        start = int(cursor) if cursor else 0
        end = start + limit
        return Page(items=items[start:end], cursor=str(end) if end < len(items) else None)
