"""
How the application may end a socket under daphne, beyond what daphne lets it.

- Close codes: RFC 6455 lets a server send 1001, 1008, 1011 and 1012 (going
  away, policy violation, internal error, service restart), and clients
  retry on them, but autobahn, under daphne, only accepts 1000 and
  3000-4999 from applications. Every other code still goes through
  autobahn's own checks.
- Refusing a handshake with an HTTP status other than 403: daphne answers
  every close before ``accept`` with 403. The ASGI ``websocket.http.response``
  extension (a ``start`` with the status, then the ``body``) refuses it with
  that status instead, e.g. 429 for a client opening too many sockets.
"""

from autobahn.websocket.types import ConnectionDeny
from daphne.ws_protocol import WebSocketProtocol

SERVER_CODES = frozenset({1001, 1008, 1011, 1012})
HTTP_RESPONSE_START = "websocket.http.response.start"
HTTP_RESPONSE_BODY = "websocket.http.response.body"

_server_close = WebSocketProtocol.serverClose
_handle_reply = WebSocketProtocol.handle_reply


def _close(self: WebSocketProtocol, code: int | None = None) -> None:
    if code in SERVER_CODES:
        self.sendCloseFrame(code=code)
    else:
        _server_close(self, code)


def _reply(self: WebSocketProtocol, message: dict) -> None:
    kind = message.get("type")
    if kind == HTTP_RESPONSE_START and self.state == self.STATE_CONNECTING:
        self.refusal_status = int(message["status"])
    elif kind == HTTP_RESPONSE_BODY and self.state == self.STATE_CONNECTING:
        reason = bytes(message.get("body", b"")).decode("utf-8", "replace") or "Refused"
        self.handshake_deferred.errback(ConnectionDeny(code=getattr(self, "refusal_status", 403), reason=reason))
        del self.handshake_deferred
        self.server.protocol_disconnected(self)
    else:
        _handle_reply(self, message)


def install() -> None:
    WebSocketProtocol.serverClose = _close
    WebSocketProtocol.handle_reply = _reply
