"""
The connection store interface: where live connections are recorded so that
any server process can find who is in a room and which channel reaches them.
"""

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

from ..exceptions import ConnectionExists, StoreError, StoreUnavailable

__all__ = ["Connection", "ConnectionExists", "ConnectionStore", "Page", "StoreError", "StoreUnavailable"]


@dataclass(frozen=True, slots=True)
class Connection:
    """One live WebSocket, as the registry records it."""

    connection_id: str
    channel_name: str
    room: str
    name: str
    connected_at: str  # ISO 8601, UTC
    instance_id: str
    source_ip: str
    user_agent: str
    expires_at: int  # epoch seconds; the table's TTL attribute
    last_active_at: str = ""  # ISO 8601, UTC; empty means connected_at

    def __post_init__(self) -> None:
        if not self.last_active_at:
            object.__setattr__(self, "last_active_at", self.connected_at)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Page:
    """Connections in store order, and the cursor of the next page (None at the end)."""

    items: list[Connection]
    cursor: str | None


class ConnectionStore(ABC):
    """
    A registry of live connections. Every method is a coroutine and must not
    block the event loop. Failures surface as the errors in
    ``chat.exceptions``, never as a backend's own types.
    """

    def __init__(self, **options: Any) -> None:
        if options:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                f"{type(self).__name__} takes no option {', '.join(sorted(options))}: "
                "fix CHAT_CONNECTION_STORE['OPTIONS']."
            )

    @abstractmethod
    async def add(self, connection: Connection) -> None:
        """Record a connection; ``ConnectionExists`` if its id is taken."""

    @abstractmethod
    async def remove(self, connection_id: str) -> Connection | None:
        """Forget a connection and return what was recorded (None if nothing)."""

    @abstractmethod
    async def get(self, connection_id: str) -> Connection | None:
        """The recorded connection, or None."""

    @abstractmethod
    async def members(self, room: str, *, limit: int = 1000, cursor: str | None = None) -> Page:
        """One page of the connections in ``room``, oldest first, without a full scan."""

    @abstractmethod
    async def scan(self, *, limit: int = 100, cursor: str | None = None) -> Page:
        """One page of all connections, in no particular order."""

    @abstractmethod
    async def touch(self, connection_id: str, last_active_at: str) -> bool:
        """Record when the connection was last active; False (and nothing written) if it is not recorded."""

    @abstractmethod
    async def count(self, room: str, *, limit: int = 10_000) -> int:
        """How many connections ``room`` has, counting no further than ``limit``; no full scan."""

    async def ensure_tables(self) -> list[str]:
        """Create whatever the store needs; return what was created. Idempotent."""
        return []

    async def ping(self) -> None:
        """Return when the store answers; ``StoreUnavailable`` otherwise."""
        return None

    async def close(self) -> None:
        """Release threads and sockets."""
        return None
