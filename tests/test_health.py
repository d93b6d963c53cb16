"""
/healthz (liveness) and /readyz (readiness) against real daphne processes:
liveness never depends on DynamoDB or Redis; readiness names what does not answer.
"""

import json
import urllib.error
import urllib.request

from .support.processes import free_port


def probe(server, path: str, host: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(server.url + path, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_healthz_is_200_while_the_relay_and_every_duty_run(server):
    status, body = probe(server, "/healthz")
    assert status == 200 and body["status"] == "ok"
    assert body["tasks"] == {
        "loop-timer": "running",
        "relay": "running",
        "heartbeat": "running",
        "sweep": "running",
        "sockets": "running",
    }


def test_readyz_is_200_when_dynamodb_and_redis_answer(server):
    status, body = probe(server, "/readyz")
    assert (status, body) == (200, {"status": "ok", "checks": {"dynamodb": "ok", "redis": "ok"}, "failed": []})


def test_load_balancers_may_call_the_probes_by_ip_address_over_http(start_server):
    server = start_server(DJANGO_SECURE="1")
    for path in ("/healthz", "/readyz"):
        status, body = probe(server, path, host="10.0.3.17:8000")
        assert status == 200 and body["status"] == "ok"
    # Everything else still needs an allowed host, and is sent to https.
    request = urllib.request.Request(server.url + "/", headers={"Host": "10.0.3.17:8000"})
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        assert error.code == 400
    else:
        raise AssertionError("a request for an unknown host was served")


def test_without_dynamodb_the_process_is_alive_but_not_ready(start_server):
    server = start_server(DYNAMODB_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    status, body = probe(server, "/readyz")
    assert (status, body["failed"], body["checks"]) == (503, ["dynamodb"], {"dynamodb": "unavailable", "redis": "ok"})
    assert "health check failed" in server.output()
    assert probe(server, "/healthz")[0] == 200


def test_without_redis_the_process_is_alive_but_not_ready(start_server):
    server = start_server(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    status, body = probe(server, "/readyz")
    assert (status, body["failed"], body["checks"]) == (503, ["redis"], {"dynamodb": "ok", "redis": "unavailable"})
    assert probe(server, "/healthz")[0] == 200
