"""
Sends that never duplicate, and seqs never given twice, whatever Redis does.

Workload (``RoomTraffic``, as in ``test_fault_ordering``): six senders over
two daphne processes sending 300 messages in ten seconds, each sent again
with the same clientMessageId when an error frame answers it; four steady
readers; one reader that leaves about every 0.7 s and comes back at the
other process with ``?since=``. Faults: the processes' own Redis killed and
started again (empty) a third of the way through, or flushed. Checker
(``traffic_checker``): every reader and the stored history hold the same
300 messages once each, in one order, seqs contiguous from 1, and the
room's counter gave out exactly 300.

Then one person's resend: the same clientMessageId three times, the second
and third on a new connection (same ``?clientId=``) to the other process,
is one message.
"""

import asyncio
import logging
import secrets
import time
from pprint import pformat

from chat import protocol

from .support.experiments import History, Recorder, RoomTraffic, Sender, sequence_checker, traffic_checker, until
from .support.redis import RedisServer

logger = logging.getLogger(__name__)

SERVER_ENV = {"CHAT_DRAIN_SECONDS": "1"}
SENDING_TIMEOUT = 40  # seconds for ten seconds of paced sending, an outage and a slow machine
FAULT_AFTER = 100  # messages back before the fault: a third of the way through
OUTAGE_ERRORS = 30  # error frames the senders get before Redis comes back: about a second of outage


async def run_with_redis_fault(start_server, room, dynamodb_local, fault) -> tuple[RoomTraffic, dict]:
    """Two processes on a Redis of their own; the workload, ``fault(redis, traffic)`` a third of the way in."""
    redis_server = await asyncio.to_thread(RedisServer().start)
    env = {**SERVER_ENV, "REDIS_URL": redis_server.url}
    servers = [start_server(**env), start_server(**env)]
    traffic = RoomTraffic(servers, room)
    started = time.monotonic()
    try:
        await traffic.start()
        await until(lambda: traffic.acked() >= FAULT_AFTER, timeout=SENDING_TIMEOUT, what=f"{FAULT_AFTER} sent")
        await fault(redis_server, traffic)
        await traffic.finish(timeout=SENDING_TIMEOUT)
        problems = await traffic_checker(traffic, History(dynamodb_local))
    finally:
        await traffic.close()
        for server in servers:  # before their Redis goes
            server.stop()
        redis_server.stop()
    logger.info(
        "%d messages, %d error frames to senders, %d sends unanswered (sent again), %d refused joins,"
        " %d joins of the hopping reader, in %.1f s",
        len(traffic.sent),
        traffic.errors(),
        sum(len(sender.unanswered) for sender in traffic.senders),
        len(traffic.hopper.refused),
        len(traffic.hopper.recorders),
        time.monotonic() - started,
    )
    return traffic, problems


async def restart_redis(redis_server: RedisServer, traffic: RoomTraffic) -> None:
    """Kill Redis (nothing saved); once the senders have felt it, start it again, empty."""
    await asyncio.to_thread(redis_server.kill)
    await until(lambda: traffic.errors() >= OUTAGE_ERRORS, timeout=10, what="the senders' error frames")
    await asyncio.to_thread(redis_server.start)


async def flush_redis(redis_server: RedisServer, traffic: RoomTraffic) -> None:
    await asyncio.to_thread(redis_server.flush)


async def test_redis_restarted_mid_stream_loses_no_message_and_gives_no_seq_twice(start_server, room, dynamodb_local):
    traffic, problems = await run_with_redis_fault(start_server, room, dynamodb_local, restart_redis)

    assert problems == {}, pformat(problems, width=120)
    assert len(traffic.sent) == 300
    assert traffic.errors() >= OUTAGE_ERRORS, "the outage should have been felt"


async def test_redis_flushed_mid_stream_loses_no_message_and_gives_no_seq_twice(start_server, room, dynamodb_local):
    traffic, problems = await run_with_redis_fault(start_server, room, dynamodb_local, flush_redis)

    assert problems == {}, pformat(problems, width=120)
    assert len(traffic.sent) == 300


async def test_one_client_message_id_sent_three_times_over_two_processes_is_one_message(
    start_server, room, dynamodb_local
):
    a, b = start_server(**SERVER_ENV), start_server(**SERVER_ENV)
    client_id = secrets.token_urlsafe(16)  # 128 bits: 22 characters
    # Workload: a reader on each process; Ann's page sends once on A.
    readers = [await Recorder.join(a.ws_url, room, "Reader A"), await Recorder.join(b.ws_url, room, "Reader B")]
    first = await Recorder.join(a.ws_url, room, "Ann", client_id=client_id)
    frames = [await Sender(first, "ann").send("only once", client_message_id="m-1")]

    # Fault: the page lost its socket before it knew, and sends again twice on a new one, to B.
    await first.close()
    second = await Recorder.join(b.ws_url, room, "Ann", client_id=client_id)
    resender = Sender(second, "ann")
    frames += [await resender.send("only once", client_message_id="m-1") for _ in range(2)]
    # Anything sent twice would reach the readers before the next message.
    await resender.send("next", client_message_id="m-2")
    for reader in readers:
        await reader.wait_for(lambda r: "next" in r.messages(), what="the next message")

    # Checker: Ann got the same frame each time; one message in the history; each reader saw it once.
    assert frames[0] is not None and frames[0]["connectionId"] == first.connection_id
    assert frames == [frames[0]] * 3
    stored = History(dynamodb_local).items(room)
    assert [(m["message"], m["clientMessageId"]) for m in stored] == [("only once", "m-1"), ("next", "m-2")]
    assert History(dynamodb_local).counter(room) == 2
    seen = {reader.client.name: reader.sequence() for reader in readers}
    problems = sequence_checker({"stored": History(dynamodb_local).stored(room), **seen}, ["only once", "next"])
    assert problems == {}, pformat(problems, width=120)
    # The new connection got it once (in its welcome, or live when B's relay had not had it yet by then),
    # and each resend came back to Ann alone: three copies of the one frame, none of another.
    welcomed = [m for m in second.welcome["history"] if m["clientMessageId"] == "m-1"]
    live = [f for f in second.of_type(protocol.MESSAGE) if f["clientMessageId"] == "m-1"]
    assert welcomed + live == [frames[0]] * 3 and len(welcomed) <= 1
    await asyncio.gather(*(r.close() for r in [*readers, second]))
