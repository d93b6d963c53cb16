"""
What this process counts, for Prometheus: every metric is defined here, in
``prometheus_client``'s default registry, and ``GET /metrics`` exposes them
in its text format. One daphne is one process, so no multiprocess
directory is needed: each process answers for itself, and Prometheus adds
them up (``sum by (...)``).

The code that does a thing counts it, with the objects below, once per
event rather than once per socket where it is hot (a room message written
to a thousand sockets is one ``inc(1000)``). The gauges of what the
process holds read the room relay when scraped, so they are never a second
copy of its state.

``/metrics`` is answered by ``MetricsMiddleware``, placed first like the
health probes: Prometheus scrapes by IP address over http, which the host
check and the https redirect would refuse. With ``CHAT_METRICS_TOKEN`` set
it needs ``Authorization: Bearer <token>``; unset, it answers only a client
on loopback, the address ``client_address`` finds behind
``CHAT_TRUSTED_PROXY_HOPS`` proxies.
"""

import hmac
import ipaddress
import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from . import protocol
from .limits import client_address

PATH = "/metrics"

# No ``*_created`` series beside every counter and histogram: Prometheus finds
# restarts from the counters themselves, and they would double the series scraped.
disable_created_metrics()

# Seconds, for latencies from a millisecond (a write on this host) to ten seconds (a process far behind).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --- What this process holds (read from the relay at each scrape) -----------


def _relays():
    from .relay import relays  # the relay counts with this module: imported when scraped, not at import

    return relays()


CONNECTIONS = Gauge("chat_connections", "Sockets this process holds.")
CONNECTIONS.set_function(lambda: sum(len(relay.sockets) for relay in _relays()))
ROOMS = Gauge("chat_rooms", "Rooms this process serves (holds at least one socket in).")
ROOMS.set_function(lambda: sum(len(relay.rooms) for relay in _relays()))

# --- Sockets -----------------------------------------------------------------

OK = "ok"  # welcomed
REFUSED = "refused"  # turned away: a bad room, a draining process, too many from the address, login required
FAILED = "failed"  # could not be registered (DynamoDB or Redis), or the client left during its welcome
CONNECTS = Counter("chat_connects", "WebSocket connects to the chat, by result: ok, refused, failed.", ["result"])
for _result in (OK, REFUSED, FAILED):
    CONNECTS.labels(_result)
CONNECT_SECONDS = Histogram(
    "chat_connect_seconds",
    "From the handshake to the welcome frame, for connects that succeed.",
    buckets=LATENCY_BUCKETS,
)

# Close codes reported as themselves: WebSocket's own and the chat's. Any other
# (a client may close with any code from 3000 to 4999) is "other", so a client
# cannot make a series per code.
_KNOWN_CLOSE_CODES = {str(code) for code in range(1000, 1016)} | {
    str(code) for name, code in vars(protocol).items() if name.startswith("CLOSE_")
}
DISCONNECTS = Counter("chat_disconnects", "Sockets closed after they were accepted, by close code.", ["code"])


def disconnected(code: int | None) -> None:
    """Count one accepted socket's close with its code."""
    label = str(code)
    DISCONNECTS.labels(label if label in _KNOWN_CLOSE_CODES else "other").inc()


RATE_LIMITED = Counter("chat_rate_limited", "Frames refused by the per-socket rate limit.")
SLOW_CONSUMER_CLOSES = Counter(
    "chat_slow_consumer_closes", "Sockets closed (4008) because their client read slower than their room talked."
)

# --- Messages and their delivery ---------------------------------------------

MESSAGES = Counter("chat_messages", "Chat messages sent through this process (stored and published).")
DELIVERIES = Counter("chat_deliveries", "Room frames this process wrote to its sockets.")
DELIVERY_SECONDS = Histogram(
    "chat_delivery_seconds",
    "From a room frame's publish (any process's wall clock) to its write to the last of this process's sockets.",
    buckets=LATENCY_BUCKETS,
)
CHANNEL_LAYER_ERRORS = Counter(
    "chat_channel_layer_errors", "Channel-layer (Redis) calls that failed: the relay's receive, a room publish."
)

# --- DynamoDB ----------------------------------------------------------------

DYNAMODB_SECONDS = Histogram(
    "chat_dynamodb_seconds",
    "DynamoDB calls by operation (PutItem, Query, ...), retries and waiting for a thread included.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
DYNAMODB_ERRORS = Counter(
    "chat_dynamodb_errors",
    "DynamoDB calls that failed, by operation and AWS error code (or botocore's exception class).",
    ["operation", "code"],
)

# --- Server processes ----------------------------------------------------------

SWEEPS = Counter("chat_sweeps", "Dead server processes this process swept (claimed and cleaned up after).")
SWEPT_CONNECTIONS = Counter("chat_swept_connections", "Registry items of dead processes' sockets this process removed.")
EVENT_LOOP_LAG = Gauge("chat_event_loop_lag_seconds", "How late the supervisor's loop timer last ticked.")

# --- /metrics ------------------------------------------------------------------


def _refusal(status: int, message: str, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps({"message": message}), content_type="application/json", status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _on_loopback(request: HttpRequest) -> bool:
    address = client_address(request.scope, settings.CHAT_TRUSTED_PROXY_HOPS)
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a unix socket, or a header that names no address


def _refused(request: HttpRequest) -> HttpResponse | None:
    """Why this request may not read the metrics, as a response; None if it may."""
    expected = settings.CHAT_METRICS_TOKEN
    if not expected:
        if _on_loopback(request):
            return None
        return _refusal(403, "Metrics are served to loopback only: set CHAT_METRICS_TOKEN to scrape from elsewhere.")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return _refusal(
            401, "Authenticate with 'Authorization: Bearer <token>'.", **{"WWW-Authenticate": 'Bearer realm="metrics"'}
        )
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        return _refusal(403, "That token is not valid for this server.")
    return None


class MetricsMiddleware:
    """Answers ``GET /metrics`` itself, before the host check and the https redirect; the rest passes through."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path != PATH:
            return await self.get_response(request)
        if request.method not in {"GET", "HEAD"}:
            response = _refusal(405, "Use GET.")
            response["Allow"] = "GET, HEAD"
            return response
        response = _refused(request)
        if response is None:
            # On the event loop, as the gauges read the relay there; a few hundred lines of text.
            response = HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
        response["Cache-Control"] = "no-store"
        return response
