"""
Keeps one socket from costing the process more than its share: a cap on
what daphne holds unsent for it, and pings on the server's own schedule.

Outbound cap. daphne writes every frame into Twisted's transport, which
buffers without limit: a client that stops reading (a phone in a tunnel, a
peer that never reads) would make this process hold every room frame for it
until the socket's longest life. After each write, the bytes the transport
holds unsent are compared with ``CHAT_MAX_OUTBOUND_BYTES``. Past it, the
frames still queued whole are dropped at once, and an ``error`` frame
``slow_consumer`` and a close with 4008 go after the bytes already on their
way, so a client that reads again learns why and reconnects with
``?since=``. One that does not answer the close within 5 s (or
``CHAT_PING_TIMEOUT`` if shorter) is dropped (a client that never reads sees nothing:
its connection is reset). A frame is never refused for its own size: a
welcome carrying a long recovery may pass the cap alone, and the socket may
then hold the cap on top of it.

Pings. daphne pings a socket only when its client has sent nothing for
``--ping-interval`` (every frame in resets its clock), so a client sending a
frame every 20 s was never pinged, however little it read. Here
every socket is pinged ``CHAT_PING_INTERVAL`` seconds after the last ping
sent, whatever the client sends, and dropped if no pong comes within
``CHAT_PING_TIMEOUT`` (a data frame does not count as one). daphne looks
every 2 s, so a ping may leave up to 2 s late. The settings govern, not
daphne's command-line flags.

Room frames. A room frame goes to every local member, so it is framed
once (``text_frame``) and written to each socket's own file descriptor
(``Wire``), skipping what daphne and autobahn do for every frame: the ASGI
send, autobahn's framing and debug logging, and Twisted's buffered write,
which registers the socket with epoll and takes it off again for each one.
Only a socket with nothing unsent takes this path, so frames never pass each
other; whatever the kernel does not take at once is handed to Twisted's
buffer as usual, and the outbound cap counts it the same.

daphne builds its own ``WebSocketProtocol`` for each socket, so the class is
patched rather than subclassed.
"""

import functools
import logging
import math
import struct
import time

from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings
from twisted.internet.abstract import FileDescriptor

from . import metrics, protocol

logger = logging.getLogger(__name__)

# The longest WebSocket frame header a server writes (no mask): 2 bytes and a 64-bit length.
FRAME_HEADER_MAX = 10
# Seconds a slow consumer has to answer its 4008 close before its connection is reset
# (CHAT_PING_TIMEOUT if that is shorter): a client that does not read is gone within seconds.
SLOW_CLOSE_TIMEOUT = 5.0

SLOW_CONSUMER_FRAME = protocol.encode(
    protocol.error_frame(
        protocol.SLOW_CONSUMER,
        "Your connection fell too far behind this room, so the server stopped keeping messages for it. "
        "Reconnect to catch up on what you missed.",
    )
).encode()

_daphne_open = WebSocketProtocol.onOpen
_daphne_send = WebSocketProtocol.serverSend
_daphne_check_timeouts = WebSocketProtocol.check_timeouts
_autobahn_ping_timeout = WebSocketProtocol.onAutoPingTimeout


def _buffer_of(transport) -> FileDescriptor | None:
    """The file descriptor under ``transport`` (TLS wraps one): its buffer is what this process holds."""
    while transport is not None and not isinstance(transport, FileDescriptor):
        transport = getattr(transport, "transport", None)
    return transport


def _unsent(buffer: FileDescriptor) -> int:
    # Twisted has no public count of what a transport holds. Its producer API
    # only says when the buffer passes ``bufferSize`` (64 KiB, which is also
    # the size of each read, so it cannot be raised to the cap), and on
    # upgraded sockets the producer slot is still taken by the HTTP channel
    # daphne upgraded from. So the count is read where FileDescriptor keeps
    # the bytes it has not yet written: ``dataBuffer`` from ``offset`` on,
    # and ``_tempDataBuffer`` (``_tempDataLen`` bytes); Twisted is pinned in
    # requirements.txt, and tests/test_slow_consumers.py fails if that moves.
    return len(buffer.dataBuffer) - buffer.offset + buffer._tempDataLen


def _client(self: WebSocketProtocol) -> str | None:
    """The client's address as daphne logs it (``--proxy-headers``: the forwarded one)."""
    if not self.client_addr:
        return None
    host, port = self.client_addr
    return f"{host}:{port}"


def _open(self: WebSocketProtocol) -> None:
    self.chat_buffer = _buffer_of(self.transport)
    self.chat_outbound_cap = self.chat_outbound_limit = settings.CHAT_MAX_OUTBOUND_BYTES
    self.chat_pinged_at = time.time()
    # autobahn copied these from daphne's factory (its --ping-timeout); the setting governs.
    self.autoPingTimeout = settings.CHAT_PING_TIMEOUT
    self.autoPingRestartOnAnyTraffic = False
    _daphne_open(self)


def _send(self: WebSocketProtocol, content: str | bytes, binary: bool = False) -> None:
    if self.chat_closing:
        return  # closed as a slow consumer: nothing more is queued for it
    _daphne_send(self, content, binary)
    # A few attribute reads and one comparison.
    buffer = self.chat_buffer
    if buffer is not None and len(buffer.dataBuffer) - buffer.offset + buffer._tempDataLen > self.chat_outbound_limit:
        _passed_limit(self, len(content) if binary else len(content.encode()))


def text_frame(text: str) -> bytes:
    """``text`` as one unmasked WebSocket text frame (FIN, opcode 1), as a server sends it."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


class Wire:
    """
    Writes prepared frames (``text_frame``) straight to one daphne socket.
    ``write`` returns False, having written nothing, when the socket is not
    open or its frames must go through daphne (TLS, or autobahn has frames
    queued): the caller then sends the text the usual way.
    """

    __slots__ = ("buffer", "protocol")

    def __init__(self, protocol: WebSocketProtocol, buffer: FileDescriptor) -> None:
        self.protocol = protocol
        self.buffer = buffer

    def write(self, frame: bytes) -> bool:
        protocol, buffer = self.protocol, self.buffer
        if protocol.state != protocol.STATE_OPEN or protocol.chat_closing or protocol.send_queue:
            return False
        if not buffer.connected or buffer.disconnecting or buffer._writeDisconnected:
            return False  # going away: nothing is written, and nothing counted as delivered
        if buffer._tempDataLen or len(buffer.dataBuffer) > buffer.offset:
            buffer.write(frame)  # behind what is unsent: in order, through Twisted's buffer
        else:
            try:
                sent = buffer.socket.send(frame)
            except OSError:  # the kernel takes nothing now, or the connection failed: Twisted's write finds out
                sent = 0
            if sent == len(frame):
                return True
            if sent:
                # A frame begun: the rest goes where Twisted keeps what it began
                # writing, which a slow consumer's close does not drop.
                buffer.dataBuffer, buffer.offset = frame[sent:], 0
                buffer.startWriting()
            else:
                buffer.write(frame)
        if len(buffer.dataBuffer) - buffer.offset + buffer._tempDataLen > protocol.chat_outbound_limit:
            _passed_limit(protocol, len(frame))
        return True


def wire_of(send) -> Wire | None:
    """
    The ``Wire`` of the socket an ASGI ``send`` callable answers, when it is
    daphne's own (``functools.partial(server.handle_reply, protocol)``) on a
    plain TCP connection; None otherwise (another server, a wrapped send, TLS).
    """
    if not isinstance(send, functools.partial) or len(send.args) != 1:
        return None
    protocol = send.args[0]
    if not isinstance(protocol, WebSocketProtocol) or getattr(send.func, "__name__", "") != "handle_reply":
        return None
    buffer = protocol.chat_buffer
    if buffer is None or buffer is not protocol.transport or not hasattr(buffer, "socket"):
        return None
    return Wire(protocol, buffer)


def _passed_limit(self: WebSocketProtocol, frame_bytes: int) -> None:
    frame_bytes += FRAME_HEADER_MAX
    allowance = self.chat_outbound_cap + frame_bytes
    if frame_bytes > self.chat_outbound_cap and allowance > self.chat_outbound_limit:
        # This frame alone is larger than the cap (a welcome with a long recovery):
        # let it through, and count the cap from the top of it from now on.
        self.chat_outbound_limit = allowance
        if _unsent(self.chat_buffer) <= allowance:
            return
    _close_slow_consumer(self)


def _close_slow_consumer(self: WebSocketProtocol) -> None:
    self.chat_closing = True
    metrics.SLOW_CONSUMER_CLOSES.inc()
    buffer = self.chat_buffer
    # Under TLS the buffer holds encrypted records, which cannot be dropped one by one.
    whole_frames = buffer is self.transport and self.state == self.STATE_OPEN
    unsent = _unsent(buffer)
    logger.warning(
        "slow consumer: closing a socket that fell behind",
        extra={
            "client": _client(self),
            "unsent_bytes": unsent,
            "dropped_bytes": buffer._tempDataLen if whole_frames else unsent,
            "limit_bytes": self.chat_outbound_limit,
        },
    )
    if not whole_frames:
        self.dropConnection(abort=True)
        return
    # Each frame is one write, and the transport moves writes from
    # _tempDataBuffer into dataBuffer before handing any byte of them to the
    # kernel: what is left in _tempDataBuffer is whole frames not yet begun.
    # They go now; the bytes in dataBuffer stay, so the client can still read
    # a well-formed stream up to the error frame and the close.
    buffer._tempDataBuffer = []
    buffer._tempDataLen = 0
    self.sendMessage(SLOW_CONSUMER_FRAME)
    # autobahn drops the connection if the client does not answer the close within this.
    self.closeHandshakeTimeout = min(settings.CHAT_PING_TIMEOUT, SLOW_CLOSE_TIMEOUT)
    self.sendClose(code=protocol.CLOSE_SLOW_CONSUMER)


def _check_timeouts(self: WebSocketProtocol) -> None:
    if self.state == self.STATE_OPEN:
        now = time.time()
        # One ping at a time: autobahn's timeout for an unanswered one decides.
        if self.autoPingPending is None and now - self.chat_pinged_at >= settings.CHAT_PING_INTERVAL:
            self.chat_pinged_at = now
            self._sendAutoPing()
        # daphne's own check pings when ``last_ping`` (reset by every frame
        # in) is older than its interval; the schedule above replaces it.
        self.last_ping = now
    _daphne_check_timeouts(self)


def _ping_timeout(self: WebSocketProtocol) -> None:
    logger.info("no pong within the ping timeout: dropping the socket", extra={"client": _client(self)})
    _autobahn_ping_timeout(self)


def install() -> None:
    if WebSocketProtocol.serverSend is _send:
        return
    WebSocketProtocol.chat_buffer = None
    WebSocketProtocol.chat_closing = False
    WebSocketProtocol.chat_outbound_limit = math.inf
    WebSocketProtocol.onOpen = _open
    WebSocketProtocol.serverSend = _send
    WebSocketProtocol.check_timeouts = _check_timeouts
    WebSocketProtocol.onAutoPingTimeout = _ping_timeout
