"""
One order for everyone, across processes and whatever their clocks say.

Workload (``RoomTraffic``): six senders spread over two daphne processes,
each sending five messages a second for ten seconds (300 in all, each with
its own clientMessageId); two steady readers on each process; and one
reader that leaves about every 0.7 s and comes back at the other process
with ``?since=`` the largest seq it saw, merging what its connections got
without removing anything.

Checker (``traffic_checker``): the stored history, every reader, and the
history read forward page by page hold the same 300 messages, each once, in
the same order, seqs contiguous from 1; the room's counter gave out exactly
300 seqs.
"""

import logging
import time
from datetime import datetime
from pprint import pformat
from statistics import median

from .support.experiments import History, RoomTraffic, logged, traffic_checker

logger = logging.getLogger(__name__)

# The servers drain quickly when the test stops them (nobody is left on them by then).
SERVER_ENV = {"CHAT_DRAIN_SECONDS": "1"}
SENDING_TIMEOUT = 30  # seconds for ten seconds of paced sending, with room for a slow machine
CLOCK_AHEAD = 3  # seconds


async def run_traffic(servers, room, dynamodb_local) -> tuple[RoomTraffic, dict[str, list[str]]]:
    """The workload from start to finish, and the checker's verdict on it."""
    traffic = RoomTraffic(servers, room)
    started = time.monotonic()
    await traffic.start()
    try:
        last = await traffic.finish(timeout=SENDING_TIMEOUT)
        problems = await traffic_checker(traffic, History(dynamodb_local))
    finally:
        await traffic.close()
    logger.info(
        "%d messages (last seq %d) to %d steady readers and one that joined %d times, in %.1f s",
        len(traffic.sent),
        last,
        len(traffic.readers),
        len(traffic.hopper.recorders),
        time.monotonic() - started,
    )
    logger.info(
        "median and worst time to a message's frame back, per sender: %s",
        [(round(median(s.latencies), 3), round(max(s.latencies), 3)) for s in traffic.senders if s.latencies],
    )
    return traffic, problems


def clock_lead(sender) -> float:
    """How far ahead of this machine's clock the server that stamped a sender's messages is (median, seconds)."""
    return median(
        datetime.fromisoformat(frame["sentAt"]).timestamp() - sender.acked_at[text]
        for text, frame in sender.acks.items()
    )


async def test_every_reader_on_either_process_gets_all_300_messages_once_in_one_order(
    start_server, room, dynamodb_local
):
    servers = [start_server(**SERVER_ENV), start_server(**SERVER_ENV)]

    traffic, problems = await run_traffic(servers, room, dynamodb_local)

    assert problems == {}, pformat(problems, width=120)
    assert len(traffic.sent) == 300
    assert len(traffic.hopper.recorders) >= 10, "the hopping reader should have come back about every 0.7 s"
    assert traffic.hopper.refused == []
    assert traffic.errors() == 0


async def test_a_process_whose_clock_is_three_seconds_ahead_changes_nothing(start_server, room, dynamodb_local):
    # Fault: the second process runs under libfaketime, its wall clock 3 s ahead. Heartbeats at the
    # default 30 s interval leave a quarter of one (7.5 s) for skew, so neither takes the other for dead.
    servers = [start_server(**SERVER_ENV), start_server(clock_offset=f"+{CLOCK_AHEAD}s", **SERVER_ENV)]

    traffic, problems = await run_traffic(servers, room, dynamodb_local)

    assert problems == {}, pformat(problems, width=120)
    assert len(traffic.sent) == 300
    assert len(traffic.hopper.recorders) >= 10
    assert traffic.hopper.refused == []
    # The fault was in force: the second process stamps the messages sent through it 3 s ahead.
    leads = [round(clock_lead(sender), 2) for sender in traffic.senders]
    assert all(abs(lead) < 1 for lead in leads[0::2]), leads
    assert all(CLOCK_AHEAD - 1 < lead < CLOCK_AHEAD + 1 for lead in leads[1::2]), leads
    for server in servers:
        assert logged(server, "swept connections") == []
