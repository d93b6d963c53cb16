"""
Redis shards (``REDIS_URLS``): the channel layer spread over two
redis-server processes, each room on the one its name hashes to. Two daphne
processes share every room: rooms land on both shards and everyone hears
every message; one shard stopped cuts off its own rooms and no other, and
they come back with it, nothing lost.
"""

import asyncio
import json
import uuid

import pytest
import redis
from channels_redis.pubsub import RedisPubSubLoopLayer
from websockets.asyncio.client import connect

from chat import protocol
from chat.health import redacted
from chat.layers import RedisChannelLayer
from chat.relay import room_group

from .support.clients import WAIT, chat_path
from .support.experiments import History, HoppingReader, Recorder, Sender, sequence_checker
from .support.redis import RedisServer

SERVER_ENV = {"CHAT_DRAIN_SECONDS": "1"}
ROOMS_PER_SHARD = 2
RECOVERY_PROBES = 40  # messages sent into a room on the restarted shard until the other process hears one
PROBE_WAIT = 0.5  # seconds each probe may take to be heard


@pytest.fixture
def shards():
    """Two Redis servers of the test's own. Asked for before ``start_server``, they outlive its daphnes."""
    servers: list[RedisServer] = []
    try:
        for _ in range(2):
            servers.append(RedisServer().start())
        yield servers
    finally:
        for server in servers:
            server.stop()


def shard_of(room: str, hosts: list[str], prefix: str) -> int:
    """Which of ``hosts`` holds ``room``, chosen as the daphnes' pubsub layer chooses: by its group's channel."""
    layer = RedisPubSubLoopLayer(hosts=hosts, prefix=prefix)
    shard = layer._get_shard(layer._get_group_channel_name(room_group(room)))
    return layer._shards.index(shard)


def rooms_by_shard(hosts: list[str], prefix: str, per_shard: int) -> list[list[str]]:
    """``per_shard`` new room names for each shard (a name lands on either about half the time)."""
    found: list[list[str]] = [[] for _ in hosts]
    while any(len(rooms) < per_shard for rooms in found):
        room = f"r-{uuid.uuid4().hex[:12]}"
        if len(rooms := found[shard_of(room, hosts, prefix)]) < per_shard:
            rooms.append(room)
    return found


def subscribed_rooms(shard: RedisServer, prefix: str) -> set[str]:
    """The rooms whose group channel is subscribed to on ``shard`` (``PUBSUB CHANNELS``)."""
    head = f"{prefix}__group__{room_group('')}"
    client = redis.Redis.from_url(shard.url, socket_timeout=WAIT, socket_connect_timeout=WAIT)
    return {name.decode().removeprefix(head) for name in client.pubsub_channels(f"{head}*")}


async def newcomer(base_url: str, room: str) -> tuple[dict, int | None]:
    """What someone joining ``room`` gets first, and the close that follows a refusal (None: still open)."""
    async with connect(base_url + chat_path(room, name="Dee")) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if first["type"] != protocol.WELCOME:
            await asyncio.wait_for(ws.wait_closed(), WAIT)
        return first, ws.close_code


class ShardRoom:
    """
    One room of the workload: Ann on the first daphne and Bob on the second,
    there throughout and both sending; and Cy, who leaves when a shard stops
    (a reload, a phone out of signal) and comes back at the other daphne
    with ``?since=``. ``sent``: every text sent into the room.
    """

    def __init__(self, name: str, shard: int) -> None:
        self.name = name
        self.shard = shard
        self.sent: list[str] = []
        self.ann: Recorder | None = None
        self.bob: Recorder | None = None
        self.cy: HoppingReader | None = None

    async def join(self, servers) -> None:
        self.ann = await Recorder.join(servers[0].ws_url, self.name, "Ann")
        self.bob = await Recorder.join(servers[1].ws_url, self.name, "Bob")
        self.cy = HoppingReader([server.ws_url for server in servers], self.name, "Cy")
        await self.cy.join(servers[1].ws_url)

    def senders(self, label: str, count: int) -> list[Sender]:
        """Ann and Bob each sending ``count`` messages (``Sender``: each waits for its echo)."""
        senders = [
            Sender(member, f"{self.name}-{member.client.name}-{label}", count=count, per_second=20)
            for member in (self.ann, self.bob)
        ]
        self.sent += [text for sender in senders for text in sender.texts]
        return senders

    async def say(self, text: str) -> None:
        """Ann sends ``text`` once, whatever answers."""
        self.sent.append(text)
        await self.ann.client.say(text)

    async def caught_up(self, history: History) -> None:
        """Wait until everyone in the room has seen the last seq it gave out (each within ``WAIT``)."""
        last = await asyncio.to_thread(history.counter, self.name)
        await asyncio.gather(
            self.ann.wait_for(lambda r: r.largest_seq() >= last, what=f"Ann in {self.name} at seq {last}"),
            self.bob.wait_for(lambda r: r.largest_seq() >= last, what=f"Bob in {self.name} at seq {last}"),
            self.cy.current.wait_for(lambda _: self.cy.largest_seq() >= last, what=f"Cy in {self.name} at {last}"),
        )

    async def problems(self, history: History) -> dict[str, list[str]]:
        """The checker: every sent message once, for everyone, in the stored order (seqs 1, 2, 3, ...)."""
        stored = await asyncio.to_thread(history.stored, self.name)
        seen = {"stored": stored, "Ann": self.ann.sequence(), "Bob": self.bob.sequence(), "Cy": self.cy.sequence()}
        return sequence_checker(seen, self.sent)

    async def close(self) -> None:
        await asyncio.gather(
            *(member.close() for member in (self.ann, self.bob, self.cy) if member is not None), return_exceptions=True
        )


async def send_all(senders: list[Sender]) -> None:
    """Run every sender to its end; each message must come back, none refused."""
    await asyncio.wait_for(asyncio.gather(*(sender.run() for sender in senders)), 2 * WAIT)
    refused = {sender.prefix: sender.errors + sender.failed for sender in senders if sender.errors or sender.failed}
    assert not refused


def heard(member: Recorder, mark: int) -> list[str]:
    """The messages ``member`` heard live since its ``mark``-th frame."""
    return [frame["message"] for frame in member.frames[mark:] if frame["type"] == protocol.MESSAGE]


async def test_rooms_land_on_both_shards_and_a_stopped_shard_stops_only_its_own_rooms(
    shards, start_server, redis_prefix, dynamodb_local
):
    hosts = [shard.url for shard in shards]
    servers = [start_server(REDIS_URLS=",".join(hosts), REDIS_URL="", **SERVER_ENV) for _ in range(2)]
    history = History(dynamodb_local)
    stops = shards[1]
    by_shard = rooms_by_shard(hosts, redis_prefix, ROOMS_PER_SHARD)
    rooms = [ShardRoom(name, index) for index, names in enumerate(by_shard) for name in names]
    unaffected = [room for room in rooms if room.shard == 0]
    cut_off = [room for room in rooms if room.shard == 1]
    try:
        # Workload: in every room, members on both processes, each sending; everyone hears everything.
        for room in rooms:
            await room.join(servers)
        assert [subscribed_rooms(shard, redis_prefix) for shard in shards] == [set(names) for names in by_shard]
        await send_all([sender for room in rooms for sender in room.senders("first", 3)])
        for room in rooms:
            await room.caught_up(history)

        # Fault: the second shard stops. Cy leaves every room just then.
        stops.kill()
        await asyncio.gather(*(room.cy.current.close() for room in rooms))
        marks = {room.name: (len(room.ann.frames), len(room.bob.frames)) for room in cut_off}

        # Rooms on the stopped shard: Ann's message is refused in words; a newcomer is turned away.
        for room in cut_off:
            await room.say(f"{room.name}-while-down")
            mark = marks[room.name][0]
            refusal = await room.ann.wait_for(
                lambda r, mark=mark: next((f for f in r.frames[mark:] if f["type"] == protocol.ERROR), None),
                what=f"an answer to Ann in {room.name}",
            )
            assert (refusal["code"], refusal["action"]) == (protocol.SERVER_ERROR, protocol.SEND_MESSAGE)
            assert "try again" in refusal["message"]
            first, close_code = await newcomer(servers[0].ws_url, room.name)
            assert (first["type"], first["code"], close_code) == (
                protocol.ERROR,
                protocol.SERVER_UNAVAILABLE,
                protocol.CLOSE_SERVER_ERROR,
            )

        # Rooms on the other shard: nothing changes; both keep talking and a newcomer is welcome.
        await send_all([sender for room in unaffected for sender in room.senders("meanwhile", 3)])
        for room in unaffected:
            await asyncio.gather(
                *(m.wait_for(lambda r, room=room: set(room.sent) <= set(r.messages())) for m in (room.ann, room.bob))
            )
            first, close_code = await newcomer(servers[1].ws_url, room.name)
            assert (first["type"], close_code) == (protocol.WELCOME, None)
            assert sorted(m["message"] for m in first["history"]) == sorted(room.sent)
        # Meanwhile nobody in a cut-off room heard a thing, nor did any socket close.
        for room in cut_off:
            ann_mark, bob_mark = marks[room.name]
            assert (heard(room.ann, ann_mark), heard(room.bob, bob_mark)) == ([], [])
            assert (room.ann.close_code, room.bob.close_code) == (None, None)
        # Operators see which shard is down.
        status, body = servers[0].get("/readyz")
        assert status == 503
        assert json.loads(body) == {
            "status": "unavailable",
            "checks": {"dynamodb": "ok", "redis": "unavailable"},
            "failed": ["redis"],
            "redisUnavailable": [stops.url],
        }

        # The shard comes back (empty): its rooms carry on without a daphne restart.
        stops.restart()
        for room in cut_off:
            for probe in range(RECOVERY_PROBES):
                mark = len(room.bob.frames)
                await room.say(f"{room.name}-probe-{probe}")
                try:
                    await room.bob.wait_for(lambda r, mark=mark: heard(r, mark), PROBE_WAIT)
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError(f"{room.name}: nothing sent after the shard came back reached Bob")

        # Checker: in every room, Ann, Bob and Cy (back with ?since=, at the other process) each got
        # every message once, in the stored order, the one sent while its shard was down included.
        for room in rooms:
            await room.cy.join(servers[0].ws_url)
        await send_all([sender for room in rooms for sender in room.senders("last", 1)])
        for room in rooms:
            await room.caught_up(history)
        problems = {room.name: found for room in rooms if (found := await room.problems(history))}
        assert not problems
        for room in cut_off:
            assert f"{room.name}-while-down" in [m["message"] for m in room.cy.current.welcome["history"]]
    finally:
        await asyncio.gather(*(room.close() for room in rooms))


async def test_the_core_layer_sends_to_a_process_channel_on_the_shard_it_reads(shards, redis_prefix):
    """channels-redis 4.3 hashes the whole name to send and the part up to ``!`` to receive; ours, one."""
    hosts = [shard.url for shard in shards]
    receiver = RedisChannelLayer(hosts=hosts, prefix=f"{redis_prefix}core")
    sender = RedisChannelLayer(hosts=hosts, prefix=f"{redis_prefix}core")
    stock = RedisChannelLayer.__mro__[1]  # channels_redis.core.RedisChannelLayer
    channels: list[str] = []
    while len(channels) < 3:  # names whose whole and local parts the stock layer puts on different shards
        channel = await receiver.new_channel("relay")
        local = receiver.non_local_name(channel)
        if stock.consistent_hash(receiver, channel) != stock.consistent_hash(receiver, local):
            channels.append(channel)
    try:
        for index, channel in enumerate(channels):
            await sender.send(channel, {"type": "socket.frame", "index": index})
            received = await asyncio.wait_for(receiver.receive(channel), WAIT)
            assert received == {"type": "socket.frame", "index": index}
    finally:
        await asyncio.gather(receiver.flush(), sender.flush())


def test_readiness_names_a_redis_server_without_its_password():
    assert redacted("rediss://default:s3cret@shard-2.abc.cache.amazonaws.com:6379/0?ssl_cert_reqs=none") == (
        "rediss://default:***@shard-2.abc.cache.amazonaws.com:6379/0"
    )
    assert redacted("redis://:s3cret@[::1]:6380/1") == "redis://:***@[::1]:6380/1"
    assert redacted("redis://10.0.1.5:6379/0") == "redis://10.0.1.5:6379/0"
