"""/healthz against real daphne processes: 200 when DynamoDB and Redis answer, 503 naming what did not."""

import json
import urllib.error
import urllib.request

from .support.processes import free_port


def healthz(server, host: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(server.url + "/healthz", headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_healthz_is_200_when_dynamodb_and_redis_answer(server):
    status, body = healthz(server)
    assert (status, body) == (200, {"status": "ok", "checks": {"dynamodb": "ok", "redis": "ok"}, "failed": []})


def test_load_balancers_may_call_healthz_by_ip_address_over_http(start_server):
    server = start_server(DJANGO_SECURE="1")
    status, body = healthz(server, host="10.0.3.17:8000")
    assert status == 200 and body["status"] == "ok"
    # Everything else still needs an allowed host, and is sent to https.
    request = urllib.request.Request(server.url + "/", headers={"Host": "10.0.3.17:8000"})
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        assert error.code == 400
    else:
        raise AssertionError("a request for an unknown host was served")


def test_healthz_is_503_naming_dynamodb_when_it_does_not_answer(start_server):
    server = start_server(DYNAMODB_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    status, body = healthz(server)
    assert (status, body["failed"], body["checks"]) == (503, ["dynamodb"], {"dynamodb": "unavailable", "redis": "ok"})
    assert "health check failed" in server.output()


def test_healthz_is_503_naming_redis_when_it_does_not_answer(start_server):
    server = start_server(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    status, body = healthz(server)
    assert (status, body["failed"], body["checks"]) == (503, ["redis"], {"dynamodb": "ok", "redis": "unavailable"})
