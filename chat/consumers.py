"""
The WebSocket consumer: socket in, frames out. API Gateway's routes map onto
its hooks: ``$connect`` is ``connect``, ``$disconnect`` is ``disconnect``,
and each text frame is routed on its ``action`` through ``ROUTES``; what
matches no route gets the ``$default`` answer, an error frame.
"""

import functools
import logging
import time
from importlib import import_module
from urllib.parse import parse_qs

from channels.auth import get_user
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.cookie import parse_cookie

from . import metrics, protocol, services
from .daphne_sockets import wire_of
from .exceptions import ProtocolError, StoreError, TooManyReactions, UnknownMessage
from .instance import get_server_instance
from .limits import RefusalWindow, TokenBucket, client_address
from .models import MODERATE_MESSAGES
from .moderation.rules import ban_refusal, send_refusal
from .names import guest_display_name_for
from .relay import LocalSocket
from .uploads.attachments import checked, mark_sent
from .uploads.storage import uploads_enabled
from .uploads.tokens import Uploader, upload_token

logger = logging.getLogger(__name__)


class ChatConsumer(AsyncWebsocketConsumer):
    # No channel per socket: this process's room relay receives for all of them.
    channel_layer_alias = None
    # Action -> handler method. Client input only ever selects a key here.
    ROUTES = {
        protocol.SEND_MESSAGE: "route_send_message",
        protocol.HISTORY: "route_history",
        protocol.TYPING: "route_typing",
        protocol.REACT: "route_react",
        protocol.EDIT_MESSAGE: "route_edit_message",
        protocol.DELETE_MESSAGE: "route_delete_message",
    }

    connection = None
    socket = None
    closing = False
    address: str | None = None  # the client's address, while AddressLimits counts this socket
    # Who sends, for de-duplicating resent messages: a logged-in user, a browser
    # (?clientId=, a secret it keeps), or failing both this connection alone.
    identity: str | None = None
    tag = ""  # the identity as frames name it (protocol.sender_tag)
    operator = False  # may delete anyone's message

    accepted = False  # the handshake completed: its close is counted by code
    connect_result = metrics.REFUSED  # how _connect ended, unless the socket was welcomed

    async def dispatch(self, message: dict) -> None:
        # Channels' own dispatch first closes stale database connections, in a
        # thread, for every frame. This consumer reaches the ORM only at connect
        # and only through database_sync_to_async, which closes them itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        """``$connect``, counted by result (``chat_connects_total``) and, when welcomed, timed from the handshake."""
        started = time.perf_counter()
        try:
            await self._connect()
        except BaseException:
            self.connect_result = metrics.FAILED
            raise
        finally:
            if self.socket is not None:  # welcomed: registered, and its welcome frame sent
                self.connect_result = metrics.OK
                metrics.CONNECT_SECONDS.observe(time.perf_counter() - started)
            metrics.CONNECTS.labels(self.connect_result).inc()

    async def _connect(self) -> None:
        room = self.scope["url_route"]["kwargs"].get("room") or protocol.DEFAULT_ROOM
        instance = get_server_instance()
        if not protocol.valid_room(room) or instance.draining:
            await self.close()  # refuses the handshake (HTTP 403); a draining process takes no one new
            return
        address = client_address(self.scope, settings.CHAT_TRUSTED_PROXY_HOPS)
        if refused := instance.addresses.admit(address):
            logger.warning("connection refused: too many from one address", extra={"address": address, "why": refused})
            await self.refuse_handshake(429, "Too many connections from your address; try again later.")
            return
        self.address = address
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        name = await self._display_name(query.get("name", [None])[0])
        await self.accept()
        self.accepted = True
        if name is None:
            await self.close_with(
                protocol.CLOSE_LOGIN_REQUIRED, protocol.LOGIN_REQUIRED, "Log in to chat here: guests are not allowed."
            )
            return
        since = query.get("since", [None])[0]
        client_id = query.get("clientId", [None])[0]
        if self.identity is None and protocol.valid_client_id(client_id):
            self.identity = f"browser:{client_id}"
        if instance.lapsed():
            # The others may be sweeping this process's connections: a new one would be swept too.
            logger.error("connection refused: this process's heartbeat has lapsed", extra={"room": room})
            await self._refuse_unavailable()
            return
        headers = dict(self.scope.get("headers", []))
        connection_id = protocol.new_connection_id()
        self.identity = self.identity or f"connection:{connection_id}"
        self.tag = protocol.sender_tag(self.identity)
        try:
            if banned := await ban_refusal(name=name, tag=self.tag):
                await self.send_frame(protocol.system_frame(message=banned))
                await self.close_by_operator(protocol.CLOSE_BY_OPERATOR)
                return
            await instance.start()
            await instance.relay.open()  # a no-op unless Redis was down when the process started
            connection = services.connection_new(
                connection_id=connection_id,
                room=room,
                name=name,
                source_ip=address,
                user_agent=headers.get(b"user-agent", b"").decode("latin-1")[:512],
                sender=self.tag,
            )
            socket = LocalSocket(
                connection,
                self,
                max_duration=float(settings.CHAT_MAX_CONNECTION_DURATION),
                wire=wire_of(self.base_send),
            )
            welcome = await services.connection_register(socket=socket, since=protocol.since_cursor(since))
        except Exception as error:
            # connection_register left nothing behind.
            if isinstance(error, StoreError):
                logger.error("connection refused: %s", error, extra={"room": room})
            else:
                logger.exception("connection refused: registration failed", extra={"room": room})
            await self._refuse_unavailable()
            return
        self.connection, self.socket = connection, socket
        self.bucket = TokenBucket(settings.CHAT_RATE_LIMIT_PER_SECOND, settings.CHAT_RATE_LIMIT_BURST)
        self.refusals = RefusalWindow(settings.CHAT_FLOOD_LIMIT, settings.CHAT_FLOOD_WINDOW)
        try:
            await self.send_frame(
                protocol.welcome_frame(
                    connection_id=connection.connection_id,
                    room=room,
                    name=name,
                    members=welcome.members,
                    history=welcome.history,
                    truncated=welcome.truncated,
                    sender=self.tag,
                    operator=self.operator,
                    upload_token=(
                        upload_token(Uploader(connection.connection_id, room, self.tag)) if uploads_enabled() else None
                    ),
                )
            )
            await socket.ready(after_seq=welcome.after_seq)
        except BaseException as error:
            # The client left during its welcome (the socket is closing), or the server is stopping:
            # undo the registration now, since no disconnect follows a connect that raised.
            self.connect_result = metrics.FAILED
            await self.forget()
            if not isinstance(error, Exception):
                raise
            logger.info("client left during its welcome", extra={"connection_id": connection.connection_id})

    async def disconnect(self, code: int) -> None:
        if self.accepted:
            metrics.disconnected(code)
        if self.address is not None:
            get_server_instance().addresses.release(self.address)
            self.address = None
        await self.forget()

    async def forget(self) -> None:
        """Undo this socket's registration, once: registry item, room, the room told it left."""
        if self.socket is None:
            return
        socket, self.socket, self.connection = self.socket, None, None
        try:
            await services.connection_disconnect(socket=socket)
        except StoreError as error:
            # The item expires by TTL, or a sweep removes it once this process is gone.
            logger.error("disconnect cleanup failed: %s", error, extra={"connection_id": socket.connection_id})
        except Exception:
            logger.exception("disconnect cleanup failed", extra={"connection_id": socket.connection_id})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.connection is None or self.closing:
            return
        self.socket.touch()
        if not self.bucket.take():
            await self._refuse_excess()
            return
        request = None
        try:
            if len(text_data or bytes_data or "") > settings.CHAT_MAX_FRAME_BYTES or (
                text_data and len(text_data.encode()) > settings.CHAT_MAX_FRAME_BYTES
            ):
                raise ProtocolError(
                    protocol.FRAME_TOO_LARGE, f"Frames may be at most {settings.CHAT_MAX_FRAME_BYTES} bytes."
                )
            request = protocol.parse_request(text_data, bytes_data)
            await getattr(self, self.ROUTES[request.action])(request)
            return
        except ProtocolError as error:
            refusal = protocol.error_frame(error.code, error.message)
        except UnknownMessage:
            refusal = protocol.error_frame(
                protocol.UNKNOWN_MESSAGE, "This room has no such message, or it was deleted."
            )
        except TooManyReactions:
            refusal = protocol.error_frame(
                protocol.TOO_MANY_REACTIONS,
                f"You have {protocol.MAX_REACTIONS_PER_PERSON} reactions on that message: take one back first.",
            )
        except StoreError as error:
            logger.error("frame not handled: %s", error, extra={"connection_id": self.connection.connection_id})
            refusal = protocol.error_frame(protocol.SERVER_UNAVAILABLE, "The chat is unavailable right now; try again.")
        except Exception:
            logger.exception("frame handling failed", extra={"connection_id": self.connection.connection_id})
            refusal = protocol.error_frame(
                protocol.SERVER_ERROR, "The server could not handle that just now; try again."
            )
        await self.send_frame(protocol.answering(refusal, request))

    async def _refuse_excess(self) -> None:
        metrics.RATE_LIMITED.inc()
        refusal = self.refusals.refuse()
        if refusal.flooding:
            await self.close_with(
                protocol.CLOSE_POLICY, protocol.FLOODING, "Disconnected for sending too fast for too long."
            )
            return
        if not refusal.tell:
            return  # told less than a second ago: a refused frame costs no answer
        await self.send_frame(
            protocol.error_frame(
                protocol.RATE_LIMITED,
                f"Slow down: at most {settings.CHAT_RATE_LIMIT_PER_SECOND} messages a second. That one was not sent.",
            )
        )

    # --- Routes ------------------------------------------------------------

    async def route_send_message(self, request: protocol.Request) -> None:
        keys = protocol.attachments_field(request.body)
        if keys and not str(request.body.get("message") or "").strip():
            text = ""  # files alone, without a caption
        else:
            text = protocol.message_text(request.body, max_length=settings.CHAT_MAX_MESSAGE_LENGTH)
        client_message_id = protocol.client_message_id(request.body)
        reply_to = protocol.reply_to_field(request.body)
        try:
            # The same clientMessageId again is a resend: slow mode lets it through to get its original back.
            resend = client_message_id and functools.partial(
                services.message_resent,
                room=self.connection.room,
                identity=self.identity,
                client_message_id=client_message_id,
            )
            await self._moderated(resend=resend or None)
            files = await checked(keys, room=self.connection.room, sender=self.tag) if keys else None
            frame, resent = await services.message_broadcast(
                sender=self.connection,
                identity=self.identity,
                text=text,
                client_message_id=client_message_id,
                reply_to=reply_to,
                attachments=files,
            )
        except StoreError as error:
            logger.error("message not sent: %s", error, extra={"connection_id": self.connection.connection_id})
            raise ProtocolError(
                protocol.SERVER_UNAVAILABLE, "That message was not sent: the chat is unavailable; try again."
            ) from None
        if resent and frame is not None:
            await self.send_frame(frame)  # the sender alone hears it again
        elif files:
            await mark_sent(files)

    async def route_history(self, request: protocol.Request) -> None:
        body, room = request.body, self.connection.room
        if "after" in body:
            after = protocol.cursor_field(body, "after", ids=False)
            await self.send_frame(await services.history_page(room=room, after=after))
        else:
            before = protocol.cursor_field(body, "before")
            await self.send_frame(await services.history_page(room=room, before=before))

    async def _moderated(self, *, counts_turn: bool = True, resend=None) -> None:
        """Refuse (``ProtocolError``) what a locked room, a mute or slow mode does not allow now."""
        refusal = await send_refusal(
            room=self.connection.room, name=self.connection.name, tag=self.tag, counts_turn=counts_turn, resend=resend
        )
        if refusal is not None:
            raise ProtocolError(*refusal)

    async def route_typing(self, request: protocol.Request) -> None:
        try:
            await self._moderated(counts_turn=False)
        except ProtocolError:
            return  # someone who may not send is not announced as typing either
        await services.typing_broadcast(sender=self.connection, tag=self.tag)

    async def route_react(self, request: protocol.Request) -> None:
        message_id = protocol.message_id_field(request.body)
        emoji = protocol.emoji_field(request.body)
        await self._moderated(counts_turn=False)
        await services.message_react(sender=self.connection, tag=self.tag, message_id=message_id, emoji=emoji)

    async def route_edit_message(self, request: protocol.Request) -> None:
        message_id = protocol.message_id_field(request.body)
        text = protocol.message_text(request.body, max_length=settings.CHAT_MAX_MESSAGE_LENGTH)
        await self._moderated(counts_turn=False)
        await services.message_edit(sender=self.connection, tag=self.tag, message_id=message_id, text=text)

    async def route_delete_message(self, request: protocol.Request) -> None:
        message_id = protocol.message_id_field(request.body)
        await services.message_delete(
            room=self.connection.room, message_id=message_id, tag=self.tag, operator=self.operator
        )

    # --- Sending -------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        if not self.closing:
            await self.base_send({"type": "websocket.send", "text": text})

    async def send_frame(self, frame: dict) -> None:
        await self.send_text(protocol.encode(frame))

    async def refuse_handshake(self, status: int, sentence: str) -> None:
        """Refuse the handshake with an HTTP status (daphne_close_codes lets daphne send one other than 403)."""
        await self.base_send({"type": "websocket.http.response.start", "status": status, "headers": []})
        await self.base_send({"type": "websocket.http.response.body", "body": sentence.encode()})

    async def close_by_operator(self, code: int) -> None:
        """An operator's close (the admin or ``@connections``), which sent its own notice first."""
        if not self.closing:
            self.closing = True
            await self.close(code=code)

    async def close_with(self, code: int, error_code: str, sentence: str) -> None:
        """Say why in an error frame (daphne drops close reasons), then close with ``code``."""
        if self.closing:
            return
        try:
            await self.send_frame(protocol.error_frame(error_code, sentence))
        finally:
            self.closing = True
            await self.close(code=code)

    # --- Identity ------------------------------------------------------------

    async def _refuse_unavailable(self) -> None:
        """An accepted socket that cannot be registered: told so (``server_unavailable``), closed with 1011."""
        self.connect_result = metrics.FAILED
        await self.close_with(
            protocol.CLOSE_SERVER_ERROR,
            protocol.SERVER_UNAVAILABLE,
            "The chat is unavailable right now; try again in a moment.",
        )

    async def _display_name(self, requested: str | None) -> str | None:
        """
        A logged-in visitor chats under their username. A guest's ``?name=``
        may not pass for a registered user. None: guests are not allowed.
        """
        session_key = _cookies(self.scope).get(settings.SESSION_COOKIE_NAME)
        if session_key:
            # The session is read here, at connect, rather than by a middleware
            # that would also wrap every frame this socket is sent.
            user = await get_user(
                {**self.scope, "session": import_module(settings.SESSION_ENGINE).SessionStore(session_key)}
            )
            if user.is_authenticated:
                self.identity = f"user:{user.pk}"
                if user.is_active and user.is_staff:
                    self.operator = await database_sync_to_async(user.has_perm)(MODERATE_MESSAGES)
                return user.get_username()[: protocol.NAME_MAX_LENGTH]
        if not settings.CHAT_ALLOW_ANONYMOUS:
            return None
        return await guest_display_name_for(requested)


def _cookies(scope: dict) -> dict[str, str]:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            return parse_cookie(value.decode("latin-1"))
    return {}


class RefuseConsumer(AsyncWebsocketConsumer):
    """Every other WebSocket path: refused at the handshake (HTTP 403)."""

    channel_layer_alias = None  # nothing to receive, so no channel to subscribe

    async def connect(self) -> None:
        await self.close()
