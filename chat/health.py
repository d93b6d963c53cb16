"""
Health of this process, for load balancers, container health checks and
operators. Answered by a middleware placed first, so neither needs an
allowed host (load balancers call by IP address) nor is redirected to https.

``/healthz`` is **liveness**: 200 while the event loop keeps time and the
room relay and every background duty are running; 503 otherwise. It never
asks DynamoDB or Redis, so a shared dependency failing never gets every
task of a deployment replaced at once.

``/readyz`` is **readiness**: 200 when DynamoDB (a GetItem of a key that
never exists) and the channel layer's Redis (a PING) both answer within
``TIMEOUT`` seconds and the process is not draining; 503 naming what is not.
"""

import asyncio
import json
import logging

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


def redis_urls() -> list[str]:
    """The Redis servers of the default channel layer; none for an in-memory layer."""
    layer = settings.CHANNEL_LAYERS.get("default", {})
    if not layer.get("BACKEND", "").startswith("channels_redis."):
        return []
    hosts = layer.get("CONFIG", {}).get("hosts", [])
    return [host if isinstance(host, str) else host["address"] for host in hosts]


async def _check_dynamodb() -> None:
    await get_connection_store().ping()


async def _check_redis() -> None:
    for url in redis_urls():
        client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
        try:
            await client.ping()
        finally:
            await client.aclose()


async def _run(name: str, check) -> str:
    try:
        await asyncio.wait_for(check(), TIMEOUT)
    except (TimeoutError, StoreError, redis.RedisError, OSError) as error:
        logger.warning("health check failed: %s", error or type(error).__name__, extra={"dependency": name})
        return UNAVAILABLE
    return OK


async def health_status() -> dict[str, str]:
    """
    Each dependency's state, checked concurrently: ``{"dynamodb": "ok",
    "redis": "unavailable"}``. Redis is left out when the channel layer is
    in memory.
    """
    checks = {"dynamodb": _check_dynamodb}
    if redis_urls():
        checks["redis"] = _check_redis
    results = await asyncio.gather(*(_run(name, check) for name, check in checks.items()))
    return dict(zip(checks, results, strict=True))


async def liveness() -> tuple[bool, dict]:
    """Whether this process works on its own: its duties run and its event loop keeps time."""
    instance = get_server_instance()
    await instance.start()  # a process that has not served a socket yet starts its duties here
    supervisor = instance.supervisor
    body = {"tasks": supervisor.state(), "loopLagSeconds": round(max(supervisor.loop_lag, supervisor.stuck_for()), 3)}
    return instance.healthy(), body


async def readiness() -> tuple[bool, dict]:
    """Whether this process should be sent new sockets: its dependencies answer and it is not draining."""
    checks = await health_status()
    if get_server_instance().draining:
        checks["process"] = DRAINING
    failed = [name for name, state in checks.items() if state != OK]
    return not failed, {"checks": checks, "failed": failed}


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
