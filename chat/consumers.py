"""
The WebSocket consumer: socket in, frames out. API Gateway's routes map onto
its hooks: ``$connect`` is ``connect``, ``$disconnect`` is ``disconnect``,
and each text frame is routed on its ``action`` through ``ROUTES``; what
matches no route gets the ``$default`` answer, an error frame.
"""

import logging
import time
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import protocol, services
from .exceptions import ProtocolError, StoreError
from .relay import Member

logger = logging.getLogger(__name__)


class ChatConsumer(AsyncWebsocketConsumer):
    # Action -> handler method. Client input only ever selects a key here.
    ROUTES = {protocol.SEND_MESSAGE: "route_send_message"}

    connection = None
    touched_at = float("-inf")  # monotonic time lastActiveAt was last written

    async def connect(self) -> None:
        room = self.scope["url_route"]["kwargs"].get("room") or protocol.DEFAULT_ROOM
        if not protocol.valid_room(room):
            await self.close()  # refuses the handshake (HTTP 403)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        headers = dict(self.scope.get("headers", []))
        client = self.scope.get("client") or ("", 0)
        connection = services.connection_new(
            connection_id=protocol.new_connection_id(),
            channel_name=self.channel_name,
            room=room,
            name=protocol.clean_name(query.get("name", [None])[0]),
            source_ip=client[0] or "",
            user_agent=headers.get(b"user-agent", b"").decode("latin-1")[:512],
        )
        member = Member(connection.connection_id, self.send_text)
        await self.accept()
        try:
            members = await services.connection_register(connection=connection, member=member)
        except StoreError as error:
            logger.error("connection refused: %s", error, extra={"room": room})
            await self.close(code=protocol.CLOSE_SERVER_ERROR)
            return
        except Exception:
            logger.exception("connection refused: registration failed", extra={"room": room})
            await self.close(code=protocol.CLOSE_SERVER_ERROR)
            return
        self.connection = connection
        await self.send_frame(
            protocol.welcome_frame(
                connection_id=connection.connection_id, room=room, name=connection.name, members=members
            )
        )
        await member.ready()

    async def disconnect(self, code: int) -> None:
        if self.connection is None:
            return
        connection, self.connection = self.connection, None
        try:
            await services.connection_disconnect(connection=connection)
        except Exception:
            logger.exception("disconnect cleanup failed", extra={"connection_id": connection.connection_id})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.connection is None:
            return
        if time.monotonic() - self.touched_at >= protocol.LAST_ACTIVE_INTERVAL:
            self.touched_at = time.monotonic()
            await services.connection_touch(connection_id=self.connection.connection_id)
        try:
            request = protocol.parse_request(text_data, bytes_data)
            await getattr(self, self.ROUTES[request.action])(request)
        except ProtocolError as error:
            await self.send_frame(protocol.error_frame(error.code, error.message))
        except Exception:
            logger.exception("frame handling failed", extra={"connection_id": self.connection.connection_id})
            await self.send_frame(
                protocol.error_frame(protocol.SERVER_ERROR, "The server could not handle that just now; try again.")
            )

    # --- Routes ------------------------------------------------------------

    async def route_send_message(self, request: protocol.Request) -> None:
        text = protocol.message_text(request.body, max_length=settings.CHAT_MAX_MESSAGE_LENGTH)
        await services.message_broadcast(sender=self.connection, text=text)

    # --- Channel-layer events addressed to this one socket --------------------

    async def chat_frame(self, event: dict) -> None:
        """Send a prepared text frame (the ``@connections`` POST and admin messages)."""
        await self.send_text(event["text"])

    async def chat_close(self, event: dict) -> None:
        """Close this socket from wherever the request came."""
        await self.close(code=event.get("code", 1000))

    # --- Sending -------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text})

    async def send_frame(self, frame: dict) -> None:
        await self.send_text(protocol.encode(frame))


class RefuseConsumer(AsyncWebsocketConsumer):
    """Every other WebSocket path: refused at the handshake (HTTP 403)."""

    channel_layer_alias = None  # nothing to receive, so no channel to subscribe

    async def connect(self) -> None:
        await self.close()
