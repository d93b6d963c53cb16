"""
Lets the application close a socket with RFC 6455's 1001, 1008, 1011 and 1012.

A server may send these (going away, policy violation, internal error,
service restart), and clients retry on them, but autobahn, under daphne,
only accepts 1000 and 3000-4999 from applications. Every other code still goes through autobahn's
own checks.
"""

from daphne.ws_protocol import WebSocketProtocol

SERVER_CODES = frozenset({1001, 1008, 1011, 1012})

_server_close = WebSocketProtocol.serverClose


def _close(self: WebSocketProtocol, code: int | None = None) -> None:
    if code in SERVER_CODES:
        self.sendCloseFrame(code=code)
    else:
        _server_close(self, code)


def install() -> None:
    WebSocketProtocol.serverClose = _close
