"""
Behind a real nginx, as Elastic Beanstalk runs it: Debian's nginx with the
project's own ``.platform/nginx`` files (tests/support/nginx.py), in front
of two daphnes as the Procfile runs them with the Beanstalk settings
(``CHAT_TRUSTED_PROXY_HOPS=2``). nginx accepts the configuration, passes
pages and WebSocket upgrades, keeps a quiet socket open past its own 60 s
default, tells daphne who the client is through ``X-Forwarded-For``, and
moves the people of a daphne told to stop to the other, missing nothing.

The quiet socket opens before the first test and is judged by the last,
so its minute overlaps the others.
"""

import asyncio
import json
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from chat import protocol

from .support.clients import ChatClient
from .support.daphne import DaphneServer
from .support.experiments import (
    RawSocket,
    Reconnecting,
    Recorder,
    Registry,
    Sender,
    eventually,
    messages_exactly_once,
    send_signal,
    told_to_reconnect,
)
from .support.nginx import PLATFORM, NginxServer, upstream_hops

DRAIN_SECONDS = 3
EXIT_MARGIN = 5  # seconds after the drain window by which the daphne has exited
# nginx closes a proxied socket on which daphne has sent nothing for proxy_read_timeout, 60 s by default.
QUIET_SECONDS = 61
# daphne's pings are traffic through nginx: none may fall within the quiet window. The chat's own
# idle limit counts frames from the client, of which there are none either.
PING_INTERVAL = 120
IDLE_TIMEOUT = 600
CLIENT = "127.0.0.9"  # a loopback address of the client's own, so it differs from nginx's 127.0.0.1
MOVED = 10  # people on the daphne that is told to stop


def daphne_env(server_env: dict[str, str], name: str) -> dict[str, str]:
    return {
        **server_env,
        "CHAT_INSTANCE_ID": f"test-nginx-{name}-{uuid.uuid4().hex[:8]}",
        # Beanstalk's setting (README): the load balancer, then nginx, each append to X-Forwarded-For.
        "CHAT_TRUSTED_PROXY_HOPS": "2",
        "CHAT_PING_INTERVAL": str(PING_INTERVAL),
        "CHAT_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
        "CHAT_DRAIN_SECONDS": str(DRAIN_SECONDS),
    }


@pytest.fixture(scope="module")
def daphnes(server_env):
    """Two daphnes; the drain test replaces the one it stops, so teardown stops what the list holds then."""
    servers = [DaphneServer(daphne_env(server_env, name), name=f"daphne-{name}") for name in "ab"]
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(DaphneServer.start, servers))
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def nginx(daphnes):
    proxy = NginxServer([server.port for server in daphnes])
    try:
        yield proxy.start()
    finally:
        proxy.stop()


@dataclass
class QuietSocket:
    raw: RawSocket
    welcome: dict
    since: float  # monotonic: when its last frame (the welcome) arrived


@pytest.fixture(scope="module", autouse=True)
def quiet(nginx):
    """A socket through nginx that, after its welcome, neither sends nor receives anything."""
    raw = RawSocket(nginx.port, RawSocket.chat_path(f"r-quiet-{uuid.uuid4().hex[:8]}", name="Quiet"))
    assert raw.status == 101, raw.status
    welcome = raw.read_json()
    assert welcome["type"] == protocol.WELCOME, welcome
    yield QuietSocket(raw, welcome, time.monotonic())
    raw.close()


def registry_item(registry: Registry, connection_id: str) -> dict:
    key = {"connectionId": {"S": connection_id}}
    return registry.client.get_item(TableName=registry.connections_table, Key=key, ConsistentRead=True)["Item"]


def held_by(registry: Registry, connection_id: str) -> str:
    """The instance id of the daphne that holds a connection, from its registry item."""
    return registry_item(registry, connection_id)["instanceId"]["S"]


def test_nginx_accepts_the_project_configuration_as_beanstalk_includes_it(nginx):
    checked = nginx.check_config()
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    assert "[warn]" not in checked.stderr, checked.stderr
    # The files nginx loaded are the committed ones, the location included unchanged.
    dumped = nginx.check_config("-T").stdout
    location = PLATFORM / "conf.d" / "elasticbeanstalk" / "00_application.conf"
    assert f"# configuration file {location}:\n{location.read_text()}" in dumped


async def test_pages_go_through_nginx_to_both_daphnes(nginx, daphnes):
    for path in ("/", "/healthz", "/healthz"):
        status, body = await asyncio.to_thread(nginx.get, path)
        assert status == 200, (path, body[:200])
    # nginx takes turns: the two health checks went one to each daphne. (A request's log line is
    # written as nginx finishes it, which may be just after the client has its answer.)
    ports = {f"127.0.0.1:{server.port}" for server in daphnes}

    def health_checks() -> list[str]:
        served = [e["upstream_addr"] for e in nginx.access_log() if e["request"].startswith("GET /healthz ")]
        return served if len(served) == 2 else []

    served = set(await eventually(health_checks, timeout=5, what="nginx's log of the two health checks"))
    assert served == ports


async def test_a_chat_session_goes_through_nginx(nginx, room):
    ann = await ChatClient.join(nginx.ws_url, room, "Ann")
    bob = await ChatClient.join(nginx.ws_url, room, "Bob")
    await ann.say("hello through nginx")
    for client in (ann, bob):
        frame = await client.receive_until(lambda f: f["type"] == protocol.MESSAGE)
        assert frame["message"] == "hello through nginx"
    await asyncio.gather(ann.close(), bob.close())


@pytest.mark.parametrize(
    ("forwarded", "source_ip"),
    [
        (None, CLIENT),  # straight to nginx: the address nginx saw
        ("203.0.113.7", "203.0.113.7"),  # through a load balancer, which names the client it saw
        ("198.51.100.66, 203.0.113.7", "203.0.113.7"),  # what the client wrote itself is not believed
    ],
)
async def test_the_registry_records_the_client_nginx_and_the_load_balancer_saw(
    nginx, room, dynamodb_local, forwarded, source_ip
):
    # The client here stands where Beanstalk's load balancer does; daphne's peer is nginx, 127.0.0.1.
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    client = await ChatClient.join(nginx.ws_url, room, "Ann", local_addr=(CLIENT, 0), additional_headers=headers)
    assert registry_item(Registry(dynamodb_local), client.connection_id)["sourceIp"]["S"] == source_ip
    await client.close()


async def test_sigterm_to_one_daphne_moves_its_people_through_nginx_to_the_other(
    daphnes, nginx, quiet, room, dynamodb_local
):
    registry = Registry(dynamodb_local)
    # The quiet socket's daphne stays; the other is told to stop.
    quiet_holder = held_by(registry, quiet.welcome["connectionId"])
    [survivor] = [d for d in daphnes if d.env["CHAT_INSTANCE_ID"] == quiet_holder]
    [victim] = [d for d in daphnes if d is not survivor]
    victim_id = victim.env["CHAT_INSTANCE_ID"]

    # Workload: people join through nginx, which takes turns, until MOVED are on the victim. One on
    # the survivor keeps talking through the drain; everyone the victim closes reconnects through
    # nginx with ?since=, as the page does.
    on_victim: list[Recorder] = []
    on_survivor: list[Recorder] = []
    for index in range(4 * MOVED):
        if len(on_victim) == MOVED:
            break
        recorder = await Recorder.join(nginx.ws_url, room, f"P{index}")
        held = held_by(registry, recorder.connection_id)
        (on_victim if held == victim_id else on_survivor).append(recorder)
    assert len(on_victim) == MOVED and on_survivor, "nginx should share new sockets between the daphnes"
    speaker = on_survivor[0]
    await speaker.client.say("before")
    for reader in on_victim + on_survivor:
        await reader.wait_for(lambda r: "before" in r.messages(), what="the first message")
    people = [Reconnecting(recorder, room) for recorder in on_victim]
    reconnects = [asyncio.create_task(p.reconnect(nginx.ws_url, DRAIN_SECONDS + 1)) for p in people]
    talk = Sender(speaker, "during", count=8 * (DRAIN_SECONDS + 1), per_second=8)
    sending = asyncio.create_task(talk.run())

    # Fault: the victim is told to stop, as a deploy does.
    send_signal(victim, signal.SIGTERM)

    # Checker: the victim exits in time, everyone on it was told to reconnect and is back, through
    # the same nginx, on the survivor.
    await asyncio.to_thread(victim.process.process.wait, DRAIN_SECONDS + EXIT_MARGIN)
    await asyncio.gather(*reconnects)
    assert [p.connection_id for p in people if not told_to_reconnect(p.first)] == []
    survivor_id = survivor.env["CHAT_INSTANCE_ID"]
    assert {held_by(registry, p.current.connection_id) for p in people} == {survivor_id}

    # ... and has every message sent meanwhile, once, as has everyone who stayed.
    await sending
    assert talk.failed == []
    await speaker.client.say("after")
    for reader in [p.current for p in people] + on_survivor:
        await reader.wait_for(lambda r: "after" in r.messages(), what="the last message")
    assert messages_exactly_once(people + on_survivor, ["before", *talk.texts, "after"]) == {}
    await asyncio.gather(*(r.close() for r in [p.current for p in people] + on_survivor))

    # nginx asked the draining daphne first for some of the reconnects, and on its 403 asked the
    # other (proxy_next_upstream http_403): the failover was nginx's, not the clients'.
    victim_addr, survivor_addr = f"127.0.0.1:{victim.port}", f"127.0.0.1:{survivor.port}"

    def passed_on() -> list:
        hops = [upstream_hops(e) for e in nginx.access_log() if f"/ws/chat/{room}/" in e["request"]]
        return [h for h in hops if h == [(victim_addr, "403"), (survivor_addr, "101")]]

    await eventually(passed_on, timeout=5, what="a reconnect the draining daphne refused, passed on by nginx")

    # The stopped daphne comes back on its port, as a replaced instance would.
    index = daphnes.index(victim)
    daphnes[index] = await asyncio.to_thread(
        DaphneServer(daphne_env(victim.env, f"{victim.name}-again"), port=victim.port, name=victim.name).start
    )


def test_a_quiet_socket_outlives_nginx_default_read_timeout(quiet):
    # Last in the module: the quiet socket opened before the first test. Nothing may pass either
    # way until QUIET_SECONDS after its welcome; a close before then fails at once.
    sock = quiet.raw.sock
    remaining = quiet.since + QUIET_SECONDS - time.monotonic()
    if remaining > 0:
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            pass
        else:
            quiet_for = time.monotonic() - quiet.since
            assert data, f"the quiet socket was closed {quiet_for:.1f} s after its welcome"
            pytest.fail(f"the quiet socket got {data[:80]!r} {quiet_for:.1f} s after its welcome: it was not quiet")
    # Still open end to end: a message goes out through nginx and comes back.
    quiet.raw.send_text(json.dumps({"action": protocol.SEND_MESSAGE, "message": "still here"}))
    frame = quiet.raw.read_json()
    assert frame["type"] == protocol.MESSAGE and frame["message"] == "still here", frame
