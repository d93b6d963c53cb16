"""
Many hosts: three test hosts in network namespaces on one bridge. ``data``
runs Redis and DynamoDB Local; ``a`` and ``b`` each run daphne, and the
clients reach them at their own addresses. A's link to the data host goes
through a delaying TCP proxy on the data host (off until a test turns it
on), and nftables rules in A's namespace drop its packets to and from the
data host: a share at random (loss), or all of them (a partition).
B is always on a clean link.

One network, one data host and the two daphne hosts serve the whole module;
the fault tests heal what they did before they end. What they measure is
shown at the end of the run (``figures``).
"""

import asyncio
import statistics
import subprocess
import time
import uuid

import pytest

from chat import protocol

from .support.daphne import DaphneServer
from .support.delay_proxy import DelayProxy
from .support.dynamodb_local import DynamoDBLocal
from .support.experiments import (
    History,
    Reconnecting,
    Recorder,
    Registry,
    RoomTraffic,
    Sender,
    delivery_seconds,
    eventually,
    sequence_checker,
    traffic_checker,
    until,
)
from .support.network import TestNetwork
from .support.processes import ROOT
from .support.recorded import python_argv
from .support.redis import RedisServer

INTERVAL = 2  # heartbeat seconds on both daphne hosts: a partition is seen within a few seconds
DELAY = 0.05  # seconds added each way on A's link when the proxy delays
LOSS = 5  # percent of packets dropped each way on A's link
REDIS_PROXY_PORT, DYNAMODB_PROXY_PORT = 7379, 9000


@pytest.fixture(scope="module")
def network():
    with TestNetwork(["data", "a", "b"]) as network:
        yield network


@pytest.fixture(scope="module")
def data_host(network, tmp_path_factory):
    """Redis and DynamoDB Local on the data host, and the delaying proxy in front of them for A."""
    data = network["data"]
    started = []
    try:
        redis = RedisServer(host=data.address, wrap=data.command)
        started.append(redis)  # before it starts: a start that fails half-way is stopped too
        redis.start()
        dynamodb = DynamoDBLocal(host=data.address, wrap=data.command)
        started.append(dynamodb)
        dynamodb.start()
        proxy = DelayProxy(
            {
                (data.address, REDIS_PROXY_PORT): (data.address, redis.port),
                (data.address, DYNAMODB_PROXY_PORT): (data.address, dynamodb.port),
            },
            delay=DELAY,
            state=tmp_path_factory.mktemp("proxy") / "delay",
            wrap=data.command,
        )
        started.append(proxy)
        proxy.start()
        yield data, redis, dynamodb, proxy
    finally:
        for process in reversed(started):
            process.stop()


@pytest.fixture(scope="module")
def servers(network, data_host, server_env):
    """daphne on host A (through the proxy) and on host B (direct), sharing the data host."""
    data, redis, dynamodb, _proxy = data_host
    subnet = f"{network.gateway}/{network.prefix}"
    env = {
        **server_env,
        "DYNAMODB_ENDPOINT_URL": dynamodb.endpoint,
        "REDIS_URL": redis.url,
        "CHAT_HEARTBEAT_INTERVAL": str(INTERVAL),
        "DJANGO_ALLOWED_HOSTS": ",".join(host.address for host in network.hosts.values()),
        "CHAT_CONNECTION_LIMIT_EXEMPT": subnet,
    }
    ensure = python_argv("manage.py", "ensure_tables")
    subprocess.run(ensure, cwd=ROOT, env={**env}, check=True, timeout=120, capture_output=True)
    through_proxy = {
        "DYNAMODB_ENDPOINT_URL": f"http://{data.address}:{DYNAMODB_PROXY_PORT}",
        "REDIS_URL": f"redis://{data.address}:{REDIS_PROXY_PORT}/0",
    }
    a, b = network["a"], network["b"]
    server_a = DaphneServer(
        {**env, **through_proxy, "CHAT_INSTANCE_ID": f"a-{uuid.uuid4().hex[:6]}"},
        port=8000,
        name="daphne-a",
        host=a.address,
        wrap=a.command,
    )
    server_b = DaphneServer(
        {**env, "CHAT_INSTANCE_ID": f"b-{uuid.uuid4().hex[:6]}"},
        port=8000,
        name="daphne-b",
        host=b.address,
        wrap=b.command,
    )
    try:
        yield server_a.start(), server_b.start()
    finally:
        server_a.stop()
        server_b.stop()


def instance_id(server: DaphneServer) -> str:
    return server.env["CHAT_INSTANCE_ID"]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else values[0]


async def run_traffic(servers, room: str, *, seconds: float = 6, per_second: float = 4) -> RoomTraffic:
    """Senders, steady readers and a hopping reader on both hosts; returns the finished traffic."""
    traffic = RoomTraffic(list(servers), room, senders=4, per_second=per_second, seconds=seconds, steady=2)
    await traffic.start()
    await traffic.finish(timeout=seconds * 4 + 20)
    return traffic


async def test_a_room_with_members_on_both_hosts_hears_every_message_in_order(servers, data_host, room):
    _, _, dynamodb, _ = data_host
    traffic = await run_traffic(servers, room)
    try:
        problems = await traffic_checker(traffic, History(dynamodb))
        assert not problems, problems
        assert traffic.errors() == 0
    finally:
        await traffic.close()


async def test_latency_on_one_host_link_shows_in_the_tail_by_about_what_was_added(servers, data_host, figures):
    _, _, dynamodb, proxy = data_host
    seen = {}
    for delayed in (False, True):
        if delayed:
            proxy.delay()
        try:
            traffic = await run_traffic(servers, f"r-{uuid.uuid4().hex[:12]}")
            try:
                problems = await traffic_checker(traffic, History(dynamodb))
                assert not problems, problems
                seen[delayed] = delivery_seconds(traffic)
            finally:
                await traffic.close()
        finally:
            proxy.no_delay()
    lines = []
    for pair, values in seen[True].items():
        before = seen[False][pair]
        route = "{} to {}".format(*("AB"[index] for index in pair))
        lines.append(
            f"{route}: median {ms(statistics.median(before))} -> {ms(statistics.median(values))},"
            f" p99 {ms(p99(before))} -> {ms(p99(values))}"
        )
    figures(f"{DELAY * 1000:.0f} ms each way on A's link to the data host; delivery " + "; ".join(lines))


async def test_packet_loss_on_one_host_link_loses_nothing_end_to_end(servers, data_host, network, room, figures):
    data, _, dynamodb, _ = data_host
    network["a"].lose(data.address, LOSS)
    try:
        traffic = await run_traffic(servers, room, seconds=8)
    finally:
        network["a"].heal()
    try:
        problems = await traffic_checker(traffic, History(dynamodb))
        assert not problems, problems
        closes = [r.close_code for r in traffic.readers if r.close_code is not None]
        assert traffic.errors() == 0 and not closes, (traffic.errors(), closes)
        figures(f"{LOSS} % loss each way on A's link: {len(traffic.sent)} messages, none lost, no error")
    finally:
        await traffic.close()


def readiness(server: DaphneServer) -> int:
    status, _ = server.get("/readyz", timeout=10)
    return status


async def test_a_host_cut_off_lets_its_people_go_and_after_the_heal_nothing_is_missed(
    servers, data_host, network, room, figures
):
    """
    Partition and heal. A is cut off from Redis and DynamoDB while its clients
    still reach it: within two heartbeat intervals B's members see its people
    leave and the registry drops them; A tells its clients (an error, then a
    close they reconnect from) and fails its readiness. Healed, A heartbeats
    again; people who reconnect to either host with ``?since=`` miss nothing
    stored, and heartbeat writes held up by the partition that land late do
    not get A's newcomers swept.
    """
    data, _, dynamodb, _ = data_host
    server_a, server_b = servers
    registry = Registry(dynamodb)
    history = History(dynamodb)
    ann = Reconnecting(await Recorder.join(server_a.ws_url, room, "Ann"), room)
    amy = Reconnecting(await Recorder.join(server_a.ws_url, room, "Amy"), room)
    bob = await Recorder.join(server_b.ws_url, room, "Bob")
    ben = Sender(await Recorder.join(server_b.ws_url, room, "Ben"), "ben", count=36, per_second=3)
    people = [bob, ben.recorder]
    try:
        sending = asyncio.create_task(ben.run())
        await until(lambda: len(ben.acks) >= 3, timeout=10, what="the first messages")
        cut_at = time.monotonic()
        network["a"].cut(data.address)
        cut_off = {ann.connection_id, amy.connection_id}
        await bob.wait_for(
            lambda r: cut_off <= set(r.presence(protocol.LEAVE)), timeout=2 * INTERVAL + 1, what="A's people leave"
        )
        left_after = time.monotonic() - cut_at
        await eventually(lambda: not registry.held_by(instance_id(server_a)), timeout=INTERVAL, what="A's items gone")
        for person in (ann, amy):
            await person.current.wait_for(lambda r: r.close_code is not None, timeout=2 * INTERVAL + 2, what="a close")
            errors = person.current.of_type(protocol.ERROR)
            assert errors and errors[-1]["code"] == protocol.SERVER_UNAVAILABLE, person.current.frames[-3:]
            assert person.current.close_code == protocol.CLOSE_SERVER_ERROR
        told_after = time.monotonic() - cut_at
        assert readiness(server_a) == 503
        await ann.reconnect(server_b.ws_url)  # the page's reconnect, landing on the other host

        network["a"].heal()
        healed_at = time.monotonic()
        await eventually(lambda: readiness(server_a) == 200, timeout=3 * INTERVAL, what="A ready again")
        back_after = time.monotonic() - healed_at
        await amy.reconnect(server_a.ws_url)
        cal = await Recorder.join(server_a.ws_url, room, "Cal")
        people.append(cal)
        await bob.wait_for(lambda r: cal.connection_id in r.presence(protocol.JOIN), what="Cal joins")

        await asyncio.wait_for(sending, 60)
        last = max(frame["seq"] for frame in ben.acks.values())
        for reader in (ann.current, amy.current, bob, cal):
            await reader.wait_for(lambda r: r.largest_seq() >= last, what=f"seq {last}")
        # Three heartbeat intervals after the heal: held-up writes have landed, sweeps have run.
        await until(lambda: time.monotonic() - healed_at >= 3 * INTERVAL, timeout=4 * INTERVAL, what="3 intervals")
        newcomers = {cal.connection_id, amy.current.connection_id}
        assert not newcomers & set(bob.presence(protocol.LEAVE)), "someone who came after the heal was swept"
        assert cal.close_code is None and amy.current.close_code is None
        assert newcomers <= registry.held_by(instance_id(server_a))
        assert registry.swept_by(instance_id(server_a)) == ""

        stored = [text for _, text in history.stored(room)]
        problems = sequence_checker(
            {"stored": history.stored(room), "Bob": bob.sequence()}, [t for t in stored if t.startswith("ben-")]
        )
        for person in (ann, amy):
            seen = [text for text in person.messages() if text.startswith("ben-")]
            if seen != stored:
                problems[person.first.client.name] = [f"saw {len(seen)} of {len(stored)}, or out of order"]
        assert not problems, problems
        assert not ben.failed
        figures(
            f"partition: B saw A's people leave after {left_after:.1f} s, A's clients told after {told_after:.1f} s"
            f" (heartbeat {INTERVAL} s); healed, A ready again after {back_after:.1f} s",
        )
    finally:
        network["a"].heal()
        recorders = people + ann.recorders + amy.recorders
        await asyncio.gather(*(recorder.close() for recorder in recorders), return_exceptions=True)
