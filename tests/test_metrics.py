"""
``GET /metrics`` scraped by a real Prometheus server: two daphne processes
share a room, and after the traffic Prometheus' query API holds the counts
that traffic implies, process by process. ``/metrics`` itself answers only
the token, or without one only loopback.
"""

import asyncio
import json
import re
import urllib.error
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus

from chat import protocol

from .support.clients import WAIT, ChatClient
from .support.daphne import DaphneServer
from .support.experiments import Recorder, eventually
from .support.processes import ROOT
from .support.prometheus import PrometheusServer

TOKEN = f"metrics-{uuid.uuid4().hex}"
# Heartbeats every 2 s: a killed process is stale after 3 s and swept within a sweep period more.
INTERVAL = "2"
DASHBOARD = ROOT / "deploy" / "grafana" / "chat-dashboard.json"
# Every metric the operations guide and the dashboard rely on, as the text format names them.
NAMES = {
    "chat_connections",
    "chat_rooms",
    "chat_connects_total",
    "chat_disconnects_total",
    "chat_messages_total",
    "chat_deliveries_total",
    "chat_delivery_seconds",
    "chat_connect_seconds",
    "chat_dynamodb_seconds",
    "chat_dynamodb_errors_total",
    "chat_channel_layer_errors_total",
    "chat_rate_limited_total",
    "chat_slow_consumer_closes_total",
    "chat_sweeps_total",
    "chat_swept_connections_total",
    "chat_event_loop_lag_seconds",
}


def server_env_for(server_env: dict[str, str], name: str) -> dict[str, str]:
    return {
        **server_env,
        "CHAT_METRICS_TOKEN": TOKEN,
        "CHAT_HEARTBEAT_INTERVAL": INTERVAL,
        "CHAT_INSTANCE_ID": f"test-metrics-{name}-{uuid.uuid4().hex[:6]}",
    }


@pytest.fixture(scope="module")
def servers(server_env):
    """Two daphne processes with the metrics token, shared by the module."""
    started: list[DaphneServer] = []
    try:
        for name in ("a", "b"):
            started.append(DaphneServer(server_env_for(server_env, name), name=f"daphne-metrics-{name}").start())
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def prometheus(servers, tmp_path_factory):
    """One Prometheus for the module, scraping both processes every second with the token."""
    server = PrometheusServer(
        [f"127.0.0.1:{s.port}" for s in servers], TOKEN, tmp_path_factory.mktemp("prometheus")
    ).start()
    try:
        server.wait_until_scraping()
        yield server
    finally:
        server.stop()


def instance(server: DaphneServer) -> str:
    """The ``instance`` label Prometheus gives a target."""
    return f"127.0.0.1:{server.port}"


def get_metrics(server: DaphneServer, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(server.url + "/metrics", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def key(name: str, **labels: str) -> str:
    """A series as PromQL selects it: ``name{label="value",...}``."""
    selector = ",".join(f'{label}="{value}"' for label, value in sorted(labels.items()))
    return f"{name}{{{selector}}}" if selector else name


def scrape(server: DaphneServer) -> dict[str, float]:
    """What the process's ``/metrics`` says now, series by series (``key``)."""
    status, _, text = get_metrics(server, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, text
    return {
        key(sample.name, **sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def settled(prometheus: PrometheusServer, wanted: dict[str, float], timeout: float = 20) -> None:
    """Wait until Prometheus' answer to every query is its wanted value; fail naming those that differ."""
    seen: dict[str, float | None] = {}

    def all_there() -> bool:
        seen.update({query: prometheus.value(query) for query in wanted})
        return all(seen[query] == value for query, value in wanted.items())

    try:
        await eventually(all_there, timeout=timeout, what="the values in Prometheus")
    except TimeoutError:
        differ = {query: (seen.get(query), value) for query, value in wanted.items() if seen.get(query) != value}
        raise AssertionError(f"Prometheus (seen, wanted): {differ}") from None


async def test_prometheus_finds_what_the_traffic_of_a_room_on_two_processes_implies(servers, prometheus, room):
    a, b = servers
    before = {server.port: scrape(server) for server in servers}

    def at(server: DaphneServer, name: str, delta: float, **labels: str) -> tuple[str, float]:
        """The query for one series of one process, and its value: what it was before, plus ``delta``."""
        return key(name, instance=instance(server), **labels), before[server.port].get(key(name, **labels), 0) + delta

    # Joined one after the other, so each member hears of those who come after it.
    members = {a: [], b: []}
    for server, name in [(a, "ann"), (a, "abe"), (b, "bea"), (b, "bob"), (b, "bud")]:
        members[server].append(await Recorder.join(server.ws_url, room, name))
    sender = members[a][0]
    count = 7
    for number in range(count):
        await sender.client.say(f"message {number}")
    for recorder in members[a] + members[b]:
        await recorder.wait_for(lambda r: len(r.of_type(protocol.MESSAGE)) == count, what=f"{count} messages")

    wanted = dict([at(a, "chat_messages_total", count), at(b, "chat_messages_total", 0)])
    for server in servers:
        here = members[server]
        # Every frame after the welcome came through the relay: the presence of those who came later, the messages.
        frames = sum(len(recorder.frames) for recorder in here)
        assert frames == count * len(here) + sum(len(r.of_type(protocol.PRESENCE)) for r in here)
        # One delivery to time per room event this process wrote to at least one of its sockets.
        events = count + len({(f["event"], f["connectionId"]) for r in here for f in r.of_type(protocol.PRESENCE)})
        wanted.update(
            [
                at(server, "chat_deliveries_total", frames),
                at(server, "chat_delivery_seconds_count", events),
                at(server, "chat_delivery_seconds_bucket", events, le="+Inf"),
                at(server, "chat_connects_total", len(here), result="ok"),
                at(server, "chat_connects_total", 0, result="refused"),
                at(server, "chat_connects_total", 0, result="failed"),
                at(server, "chat_connect_seconds_count", len(here)),
                (key("chat_connections", instance=instance(server)), len(here)),
                (key("chat_rooms", instance=instance(server)), 1),
            ]
        )
    await settled(prometheus, wanted)

    # Each process timed its own DynamoDB calls: registry writes (BatchWriteItem, new sockets in groups), the
    # room's roster and history (Query), and on the sender's process the room's seq counter (UpdateItem).
    dynamodb = prometheus.query("sum by (instance) (chat_dynamodb_seconds_count{operation='BatchWriteItem'})")
    assert set(dynamodb) == {instance(a), instance(b)} and min(dynamodb.values()) > 0
    assert prometheus.query("chat_dynamodb_seconds_count{operation='UpdateItem'}")[instance(a)] > 0
    assert min(prometheus.query("chat_dynamodb_seconds_count{operation='Query'}").values()) > 0
    # Publish to write, on one machine: well under a second on average.
    mean = prometheus.query("chat_delivery_seconds_sum / chat_delivery_seconds_count")
    assert set(mean) == {instance(a), instance(b)} and all(0 < value < 1 for value in mean.values()), mean
    lag = prometheus.query("chat_event_loop_lag_seconds")
    assert set(lag) == {instance(a), instance(b)} and all(value < 5 for value in lag.values()), lag

    # Closes are counted by code (1000: the client's normal close) and the gauges follow.
    for recorder in members[b]:
        await recorder.close()
    await settled(
        prometheus,
        dict(
            [
                at(b, "chat_disconnects_total", len(members[b]), code="1000"),
                (key("chat_connections", instance=instance(b)), 0),
                (key("chat_rooms", instance=instance(b)), 0),
            ]
        ),
    )
    for recorder in members[a]:
        await recorder.close()


async def test_a_refused_handshake_counts_as_refused_and_not_as_a_disconnect(servers, prometheus):
    a = servers[0]
    before = scrape(a)
    with pytest.raises(InvalidStatus) as refused:
        await ChatClient.join(a.ws_url, "no.dots.in.room.names")
    assert refused.value.response.status_code == 403
    query = key("chat_connects_total", instance=instance(a), result="refused")
    await settled(prometheus, {query: before[key("chat_connects_total", result="refused")] + 1})
    disconnects = {name: value for name, value in scrape(a).items() if name.startswith("chat_disconnects_total")}
    assert disconnects == {name: value for name, value in before.items() if name.startswith("chat_disconnects_total")}


async def test_frames_refused_by_the_rate_limit_are_counted(servers, prometheus, room):
    a = servers[0]
    before = scrape(a)["chat_rate_limited_total"]
    client = await Recorder.join(a.ws_url, room, "flood")
    sent = 40  # twice the burst, in well under the 10 s flood window's 50 refusals
    for _ in range(sent):
        await client.client.send("not json")

    def answered(recorder: Recorder) -> list:
        return [f for f in recorder.of_type(protocol.ERROR) if f["code"] == protocol.BAD_JSON]

    # Each frame was either answered (bad JSON) or refused: together, every one sent.
    query = key("chat_rate_limited_total", instance=instance(a))
    await eventually(
        lambda: (prometheus.value(query) or 0) - before + len(answered(client)) == sent,
        timeout=20,
        what="every frame answered or counted as refused",
    )
    assert len(answered(client)) < sent
    await client.close()


async def test_a_sweep_of_a_dead_process_is_counted_with_the_connections_it_removed(
    servers, prometheus, server_env, room
):
    before = [scrape(server) for server in servers]
    swept_before = sum(s.get("chat_swept_connections_total", 0) for s in before)
    sweeps_before = sum(s.get("chat_sweeps_total", 0) for s in before)
    doomed = DaphneServer(server_env_for(server_env, "doomed"), name="daphne-metrics-doomed").start()
    try:
        clients = [await Recorder.join(doomed.ws_url, room, name) for name in ("dee", "dot")]
        doomed.kill()
        await eventually(
            lambda: prometheus.value("sum(chat_swept_connections_total)") == swept_before + len(clients),
            timeout=30,
            what="the dead process's connections counted as swept",
        )
        assert prometheus.value("sum(chat_sweeps_total)") >= sweeps_before + 1
        for client in clients:
            await asyncio.wait_for(client._task, WAIT)  # their connections ended with the process
    finally:
        doomed.stop()


def test_metrics_are_served_to_the_token_alone_when_one_is_set(servers):
    server = servers[0]
    status, headers, body = get_metrics(server)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), body
    assert "Bearer" in body and headers["Content-Type"] == "application/json"
    assert get_metrics(server, {"Authorization": "Basic dXNlcjpwYXNz"})[0] == 401
    assert get_metrics(server, {"Authorization": "Bearer not-the-token"})[0] == 403

    status, headers, body = get_metrics(server, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and headers["Content-Type"].startswith("text/plain"), body
    assert headers["Cache-Control"] == "no-store"
    exported = {family.name for family in text_string_to_metric_families(body) if family.name.startswith("chat_")}
    # The parser names counters without their _total.
    assert exported == {name.removesuffix("_total") for name in NAMES}


def test_the_dashboard_shows_every_metric_in_queries_prometheus_accepts(prometheus):
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    shown = {re.sub(r"_(bucket|count|sum)$", "", name) for query in queries for name in re.findall(r"chat_\w+", query)}
    assert shown == NAMES
    for query in queries:
        # Grafana's variables as "every job, every process, a minute".
        concrete = query.replace("$__rate_interval", "1m").replace("$job", ".*").replace("$instance", ".*")
        prometheus.query(concrete)  # a query Prometheus cannot parse is answered 400, and raises


def test_the_operations_guide_explains_every_metric_and_links_the_dashboard():
    guide = (ROOT / "docs" / "operations.md").read_text()
    for name in sorted(NAMES):
        assert f"| `{name}` |" in guide, name
    assert "(../deploy/grafana/chat-dashboard.json)" in guide


def test_without_a_token_metrics_are_served_to_loopback_only(start_server):
    # Production transport security on, behind one trusted proxy: /metrics is still reachable by IP over http.
    server = start_server(DJANGO_SECURE="1", CHAT_TRUSTED_PROXY_HOPS="1")
    by_ip = {"Host": "10.0.3.17:8000"}
    status, _, body = get_metrics(server, by_ip)
    assert status == 200 and "chat_connections" in body
    # The proxy says who the client was: one on loopback may read them, one elsewhere may not.
    assert get_metrics(server, {**by_ip, "X-Forwarded-For": "127.0.0.1"})[0] == 200
    status, _, body = get_metrics(server, {**by_ip, "X-Forwarded-For": "127.0.0.1, 203.0.113.9"})
    assert status == 403 and "CHAT_METRICS_TOKEN" in body
