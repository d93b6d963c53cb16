"""
``/healthz``: whether this process can reach what it needs, for load
balancers and container health checks.

200 when DynamoDB (a GetItem of a key that never exists) and the channel
layer's Redis (a PING) both answer within ``TIMEOUT`` seconds; 503 naming
what failed otherwise. It is answered by a middleware placed first, so it
needs no allowed host (load balancers call it by IP address) and is never
redirected to https.
"""

import asyncio
import json
import logging

import redis.asyncio as redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .exceptions import StoreError
from .stores import get_connection_store

logger = logging.getLogger(__name__)

PATH = "/healthz"
TIMEOUT = 2.0  # seconds each dependency may take to answer
OK = "ok"
UNAVAILABLE = "unavailable"


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


class HealthCheckMiddleware:
    """Answers ``GET /healthz`` itself; every other request passes through."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path != PATH or request.method not in {"GET", "HEAD"}:
            return await self.get_response(request)
        checks = await health_status()
        failed = [name for name, state in checks.items() if state != OK]
        body = {"status": UNAVAILABLE if failed else OK, "checks": checks, "failed": failed}
        response = HttpResponse(json.dumps(body), content_type="application/json", status=503 if failed else 200)
        response["Cache-Control"] = "no-store"
        return response
