"""
Health of this process, for load balancers, container health checks and
operators. Answered by a middleware placed first, so neither needs an
allowed host (load balancers call by IP address) nor is redirected to https.

``/healthz`` is **liveness**: 200 while the event loop keeps time and the
room relay and every background duty are running; 503 otherwise. It never
asks DynamoDB or Redis, so a shared dependency failing never gets every
task of a deployment replaced at once.

``/readyz`` is **readiness**: 200 when DynamoDB (a GetItem of a key that
never exists) and every Redis server of the channel layer (a PING each, all
at once) answer within ``TIMEOUT`` seconds and the process is not draining;
503 naming what is not, and which Redis servers (``REDIS_URLS``) did not.
"""

import asyncio
import functools
import json
import logging
from urllib.parse import urlsplit

import redis.asyncio as redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .exceptions import StoreError
from .instance import get_server_instance
from .stores import get_connection_store

logger = logging.getLogger(__name__)

PATH = "/healthz"
READY_PATH = "/readyz"
TIMEOUT = 2.0  # seconds each dependency may take to answer
OK = "ok"
UNAVAILABLE = "unavailable"
DRAINING = "draining"
LAPSED = "heartbeat_lapsed"  # its last heartbeat ran out: the others may be sweeping it


def redis_urls() -> list[str]:
    """The Redis servers of the default channel layer; none for an in-memory layer."""
    layer = settings.CHANNEL_LAYERS.get("default", {})
    if not layer.get("BACKEND", "").startswith(("channels_redis.", "chat.layers.")):
        return []
    hosts = layer.get("CONFIG", {}).get("hosts", [])
    return [host if isinstance(host, str) else host["address"] for host in hosts]


def redacted(url: str) -> str:
    """A Redis URL fit for a log line or a probe's body: its password shown as ``***``, its query left off."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc, query="", fragment="").geturl()


async def _check_dynamodb() -> None:
    await get_connection_store().ping()


async def _ping_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _run(name: str, check, **fields: str) -> str:
    try:
        await asyncio.wait_for(check(), TIMEOUT)
    except (TimeoutError, StoreError, redis.RedisError, OSError) as error:
        logger.warning("health check failed: %s", error or type(error).__name__, extra={"dependency": name, **fields})
        return UNAVAILABLE
    return OK


async def health_status() -> tuple[dict[str, str], dict[str, str]]:
    """
    Each dependency's state, and each Redis server's (named by ``redacted``),
    all checked concurrently: ``({"dynamodb": "ok", "redis": "unavailable"},
    {"redis://10.0.1.5:6379/0": "ok", "redis://10.0.2.7:6379/0":
    "unavailable"})``. ``redis`` is ok only when every server answers: each
    holds the rooms that hash to it. Redis is left out of both when the
    channel layer is in memory.
    """
    urls = redis_urls()
    states = await asyncio.gather(
        _run("dynamodb", _check_dynamodb),
        *(_run("redis", functools.partial(_ping_redis, url), server=redacted(url)) for url in urls),
    )
    checks = {"dynamodb": states[0]}
    servers = {redacted(url): state for url, state in zip(urls, states[1:], strict=True)}
    if servers:
        checks["redis"] = OK if all(state == OK for state in servers.values()) else UNAVAILABLE
    return checks, servers


async def liveness() -> tuple[bool, dict]:
    """Whether this process works on its own: its duties run and its event loop keeps time."""
    instance = get_server_instance()
    await instance.start()  # a process that has not served a socket yet starts its duties here
    supervisor = instance.supervisor
    body = {"tasks": supervisor.state(), "loopLagSeconds": round(max(supervisor.loop_lag, supervisor.stuck_for()), 3)}
    return instance.healthy(), body


async def readiness() -> tuple[bool, dict]:
    """
    Whether this process should be sent new sockets: its dependencies
    answer, it is not draining, and its heartbeat has not lapsed.
    """
    checks, servers = await health_status()
    instance = get_server_instance()
    if instance.draining:
        checks["process"] = DRAINING
    elif instance.lapsed():
        checks["process"] = LAPSED
    failed = [name for name, state in checks.items() if state != OK]
    body = {"checks": checks, "failed": failed}
    if unanswered := [url for url, state in servers.items() if state != OK]:
        body["redisUnavailable"] = unanswered  # the shards whose rooms are cut off, with REDIS_URLS
    return not failed, body


class HealthCheckMiddleware:
    """Answers ``GET /healthz`` and ``GET /readyz`` itself; every other request passes through."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        probes = {PATH: liveness, READY_PATH: readiness}
        if request.path not in probes or request.method not in {"GET", "HEAD"}:
            return await self.get_response(request)
        ok, details = await probes[request.path]()
        body = {"status": OK if ok else UNAVAILABLE, **details}
        response = HttpResponse(json.dumps(body), content_type="application/json", status=200 if ok else 503)
        response["Cache-Control"] = "no-store"
        return response
