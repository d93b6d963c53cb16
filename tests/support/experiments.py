"""
Fault tests as experiments: a workload of clients that each record what they
saw, a fault done to real processes, and checkers that judge the recorded
histories as a whole.

- ``Recorder``: a chat client that keeps every frame it receives (and its close
  code) from a background task, so a test can wait on what it saw.
- ``RawSocket``: a WebSocket client on a plain TCP socket, for clients that
  misbehave on purpose (never read, never answer a close or a ping).
- ``Reconnecting``: one person across reconnects, as the page does it after a
  server restart: join again elsewhere with ``?since=`` the last message seen.
- ``Sender``: one person sending at a steady pace, each message with its own
  clientMessageId, sent again (the same id) when an error frame answers it.
- ``HoppingReader``: a reader that keeps leaving and coming back, alternately
  to each server, with ``?since=`` the largest seq it saw.
- ``RoomTraffic``: the ordering workload: senders and steady readers spread
  over the servers, and one hopping reader.
- ``Registry``: what DynamoDB Local holds for a room or a server process;
  ``History``: a room's stored messages and its seq counter.
- faults: ``send_signal`` (SIGSTOP, SIGCONT, SIGTERM, SIGKILL to a daphne);
  ``RedisServer.restart`` and ``flush`` (``tests/support/redis.py``); a daphne
  with its clock off (``start_server(clock_offset="+3s")``).
- figures: ``delivery_seconds`` (from first send to each steady reader).
- checkers: ``joins_matched_by_leaves``, ``messages_exactly_once``,
  ``sequence_checker``, ``told_to_reconnect``; ``api_status``, ``logged`` and
  ``aws_operations`` for what operators see of a process.
- ``eventually``: a bounded poll off the event loop, so recorders keep reading;
  ``until``: one on it, for what the recorders themselves hold.
"""

import asyncio
import base64
import itertools
import json
import os
import random
import signal
import socket
import struct
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from chat import protocol

from . import aws_recorder
from .clients import WAIT, ChatClient, chat_path
from .processes import wait_until

Frame = dict[str, Any]
# (seq, text) of one message as a client saw it; seq None when the frame had none.
Seen = tuple[int | None, str]


class Recorder:
    """A ``ChatClient`` whose frames are recorded as they arrive, with the close that ended it."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.frames: list[Frame] = []
        self.arrivals: list[float] = []  # when each frame came (monotonic clock)
        self.close_code: int | None = None
        self.closed_at: float | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def join(cls, base_url: str, room: str, name: str, **options) -> "Recorder":
        return cls(await ChatClient.join(base_url, room, name, **options))

    @property
    def connection_id(self) -> str:
        return self.client.connection_id

    @property
    def welcome(self) -> Frame:
        return self.client.welcome

    async def _read(self) -> None:
        try:
            async for text in self.client.ws:
                self.frames.append(json.loads(text))
                self.arrivals.append(time.monotonic())
                self._changed.set()
        except Exception:  # the connection ended; its close code says how
            pass
        self.close_code = self.client.ws.close_code
        self.closed_at = time.monotonic()
        self._changed.set()

    async def wait_for(self, predicate: Callable[["Recorder"], object], timeout: float = WAIT, what: str = "") -> Any:
        """Wait until ``predicate(self)`` is truthy; fail after ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (result := predicate(self)):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"{what or 'condition'} not seen in {timeout} s; saw {self.frames[-5:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue
        return result

    def of_type(self, kind: str) -> list[Frame]:
        return [frame for frame in self.frames if frame["type"] == kind]

    def messages(self) -> list[str]:
        """Texts of the ``message`` frames, in the welcome's history and live, as received."""
        return [m["message"] for m in self.welcome["history"]] + [m["message"] for m in self.of_type(protocol.MESSAGE)]

    def presence(self, event: str) -> list[str]:
        return [f["connectionId"] for f in self.of_type(protocol.PRESENCE) if f["event"] == event]

    def roster(self) -> set[str]:
        """Who this client takes to be in the room: the welcome's members, then each join and leave since."""
        members = {member["connectionId"] for member in self.welcome["members"]}
        for frame in self.of_type(protocol.PRESENCE):
            if frame["event"] == protocol.JOIN:
                members.add(frame["connectionId"])
            else:
                members.discard(frame["connectionId"])
        return members

    def last_message_id(self) -> str | None:
        """The newest message this client saw, in its welcome's history or live: what it passes as ``?since=``."""
        ids = [m["id"] for m in self.welcome["history"]] + [m["id"] for m in self.of_type(protocol.MESSAGE)]
        return max(ids, default=None)

    def sequence(self) -> list[Seen]:
        """(seq, text) of every message this client got, its welcome's history first, as received."""
        return [(m.get("seq"), m["message"]) for m in self.welcome["history"] + self.of_type(protocol.MESSAGE)]

    def largest_seq(self) -> int:
        return max((seq for seq, _ in self.sequence() if seq is not None), default=0)

    async def page_forward(self, after: int = 0, max_pages: int = 100) -> list[Seen]:
        """Every message after seq ``after``, read by the ``history`` action's forward pages while ``more``."""
        found: list[Seen] = []
        for _ in range(max_pages):
            mark = len(self.of_type(protocol.HISTORY))
            await self.client.send({"action": protocol.HISTORY, "after": after})
            pages = await self.wait_for(lambda r, mark=mark: r.of_type(protocol.HISTORY)[mark:], what="a history page")
            messages = pages[0]["messages"]
            found += [(m.get("seq"), m["message"]) for m in messages]
            if not pages[0]["more"] or not messages:
                return found
            after = messages[-1]["seq"]
        raise AssertionError(f"history pages after {after} did not end within {max_pages} pages")

    async def close(self) -> None:
        await self.client.close()
        await asyncio.wait_for(self._task, WAIT)


def joins_matched_by_leaves(observer: Recorder, connection_ids: set[str] | None = None) -> dict[str, tuple[int, int]]:
    """
    The connections whose ``join`` and ``leave`` frames do not pair up, as
    the observer saw them: ``{connection id: (joins, leaves)}``; empty when
    every join has its leave and no leave came without a join.
    """
    joins, leaves = Counter(observer.presence(protocol.JOIN)), Counter(observer.presence(protocol.LEAVE))
    ids = (set(joins) | set(leaves)) if connection_ids is None else connection_ids
    return {cid: (joins[cid], leaves[cid]) for cid in ids if joins[cid] != leaves[cid]}


class Reconnecting:
    """
    One person across reconnects: the ``Recorder`` of each connection in
    turn. ``reconnect`` does what the page does when the server closes the
    socket: join again (elsewhere) with ``?since=`` the last message seen.
    What it received is what its connections received together.
    """

    def __init__(self, first: Recorder, room: str) -> None:
        self.recorders = [first]
        self.room = room

    @property
    def first(self) -> Recorder:
        return self.recorders[0]

    @property
    def current(self) -> Recorder:
        return self.recorders[-1]

    @property
    def connection_id(self) -> str:
        return self.first.connection_id

    def messages(self) -> list[str]:
        return [text for recorder in self.recorders for text in recorder.messages()]

    async def reconnect(self, base_url: str, timeout: float = WAIT) -> Recorder:
        """Once the current connection is closed (within ``timeout``), join ``base_url`` with ``?since=``."""
        current = self.current
        await current.wait_for(lambda r: r.close_code is not None, timeout, what="the server's close")
        # As the page: the largest seq seen when messages carry one, else the newest message id.
        seq = max(r.largest_seq() for r in self.recorders)
        since = str(seq) if seq else max(filter(None, (r.last_message_id() for r in self.recorders)), default=None)
        self.recorders.append(await Recorder.join(base_url, self.room, current.client.name, since=since))
        return self.current


class Sender:
    """
    One person sending ``count`` messages, ``per_second`` a second, each with
    a clientMessageId of its own, and waiting for each to come back before
    the next, as the page's outbox does: a send answered by an error frame
    (the server could not send it just then) is sent again with the same
    clientMessageId, up to ``attempts`` times, and so is one that got no
    answer in ``ECHO_TIMEOUT``, so that nothing is lost and, the server
    willing, nothing is sent twice. ``acks`` holds the frame that
    came back for each text, ``acked_at`` when (wall clock), ``latencies``
    how long after its first send, ``errors`` the error frames it got.
    """

    RETRY_PAUSE = 0.1  # seconds before a send is tried again, times the attempt
    ECHO_TIMEOUT = 5.0  # seconds without an answer before it is sent again, as the page's outbox does

    def __init__(
        self, recorder: Recorder, prefix: str, *, count: int = 0, per_second: float = 1.0, attempts: int = 5
    ) -> None:
        self.recorder = recorder
        self.prefix = prefix
        self.count = count
        self.per_second = per_second
        self.attempts = attempts
        self.texts = [f"{prefix}-{index}" for index in range(count)]
        self.acks: dict[str, Frame] = {}
        self.acked_at: dict[str, float] = {}
        self.errors: list[Frame] = []
        self.failed: list[str] = []
        self.latencies: list[float] = []  # seconds from the first send of each message to its frame back
        self.first_sent: dict[str, float] = {}  # when each text was first sent (monotonic clock)
        self.unanswered: list[str] = []  # sends that got no answer in ECHO_TIMEOUT, and went again

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index, text in enumerate(self.texts):
            await self.send(text, client_message_id=text)
            # Pacing: the next send is due at its place in the schedule, whatever this one took.
            await asyncio.sleep(max(0.0, started + (index + 1) / self.per_second - loop.time()))

    async def send(self, text: str, *, client_message_id: str) -> Frame | None:
        """Send ``text`` until its message frame comes back (returned) or the attempts are used up (None)."""
        began = self.first_sent[text] = time.monotonic()
        for attempt in range(1, self.attempts + 1):
            mark = len(self.recorder.frames)
            await self.recorder.client.send(
                {"action": protocol.SEND_MESSAGE, "message": text, "clientMessageId": client_message_id}
            )
            try:
                answer = await self.recorder.wait_for(
                    lambda r, mark=mark: _answer(r.frames[mark:], client_message_id),
                    self.ECHO_TIMEOUT,
                    what=f"an answer to {text}",
                )
            except TimeoutError:
                self.unanswered.append(text)  # published, perhaps, into a Redis that had just come back
                continue
            if answer["type"] == protocol.MESSAGE:
                self.acks[text] = answer
                self.acked_at[text] = time.time()
                self.latencies.append(time.monotonic() - began)
                return answer
            self.errors.append(answer)
            await asyncio.sleep(self.RETRY_PAUSE * attempt)  # pacing: a client backs off before sending again
        self.failed.append(text)
        return None


def _answer(frames: list[Frame], client_message_id: str) -> Frame | None:
    """The first frame that answers a send: its message frame back, or an error."""
    for frame in frames:
        if frame["type"] == protocol.ERROR:
            return frame
        if frame["type"] == protocol.MESSAGE and frame.get("clientMessageId") == client_message_id:
            return frame
    return None


class JoinRefused(Exception):
    """The server answered a connect with something other than its welcome (an error frame, then a close)."""


class HoppingReader:
    """
    A reader that keeps leaving and coming back, as a phone on a bad network
    does: every ``every`` seconds or so it closes its socket and joins again,
    alternately at each of ``base_urls``, with ``?since=`` the largest seq it
    has seen. A connect the server refuses (it cannot reach Redis) is tried
    again, a bounded number of times. What it saw is what its connections
    received together, welcome histories and live frames, in order: it
    removes nothing, so a message that came twice is there twice.
    """

    JOIN_ATTEMPTS = 50
    JOIN_RETRY_PAUSE = 0.2  # seconds

    def __init__(self, base_urls: list[str], room: str, name: str, *, every: float = 0.7) -> None:
        self.base_urls = base_urls
        self.room = room
        self.name = name
        self.every = every
        self.recorders: list[Recorder] = []
        self.joined: list[str] = []  # per connection: where, and with which ?since=
        self.refused: list[str] = []

    @property
    def connection_id(self) -> str:
        return self.name

    @property
    def current(self) -> Recorder:
        return self.recorders[-1]

    def sequence(self) -> list[Seen]:
        return [seen for recorder in self.recorders for seen in recorder.sequence()]

    def largest_seq(self) -> int:
        return max((recorder.largest_seq() for recorder in self.recorders), default=0)

    def connections(self) -> list[str]:
        """Per connection, where and from which seq it joined, and the seqs its welcome and live frames carried."""

        def span(seqs: list) -> str:
            return f"{seqs[0]}..{seqs[-1]} ({len(seqs)})" if seqs else "none"

        return [
            f"#{index} {self.joined[index]}: history {span([m.get('seq') for m in r.welcome['history']])}, "
            f"live {span([m.get('seq') for m in r.of_type(protocol.MESSAGE)])}"
            for index, r in enumerate(self.recorders)
        ]

    def truncated(self) -> list[int]:
        """The connections (by number) whose welcome said its history was cut short."""
        return [index for index, recorder in enumerate(self.recorders) if recorder.welcome.get("truncated")]

    async def join(self, base_url: str) -> Recorder:
        """Join ``base_url`` (with ``?since=`` once it has been in the room), trying again while refused."""
        for _ in range(self.JOIN_ATTEMPTS):
            since = str(self.largest_seq()) if self.recorders else None
            url = base_url + chat_path(self.room, name=self.name, since=since)
            try:
                ws = await asyncio.wait_for(connect(url), WAIT)
            except (OSError, TimeoutError, WebSocketException) as error:
                self.refused.append(f"{base_url}: {error!r}")
            else:
                try:
                    first = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
                    if first["type"] != protocol.WELCOME:
                        raise JoinRefused(first)
                except (JoinRefused, TimeoutError, WebSocketException) as error:
                    self.refused.append(f"{base_url}: {error!r}")
                    await ws.close()
                else:
                    self.recorders.append(Recorder(ChatClient(ws, first)))
                    self.joined.append(f"{base_url} since={since}")
                    return self.current
            await asyncio.sleep(self.JOIN_RETRY_PAUSE)  # pacing: a client backs off before connecting again
        raise AssertionError(f"{self.name} was refused {self.JOIN_ATTEMPTS} times; last: {self.refused[-3:]}")

    async def hop(self, until: asyncio.Event, max_hops: int = 1000) -> None:
        """Join, stay about ``every`` seconds, leave, join the next server; once ``until`` is set, stay joined."""
        for hop in range(max_hops):
            current = await self.join(self.base_urls[hop % len(self.base_urls)])
            stay = self.every * random.uniform(0.8, 1.2)  # about: so the hops fall at every moment of a message
            try:
                await asyncio.wait_for(until.wait(), stay)
                return
            except TimeoutError:
                await current.close()
        raise AssertionError(f"{self.name} hopped {max_hops} times without being told to stop")

    async def close(self) -> None:
        if self.recorders:
            await self.current.close()


class RoomTraffic:
    """
    The workload of the ordering experiments, in one room: ``senders``
    people spread over ``servers``, each sending ``per_second`` messages a
    second for ``seconds`` (``Sender``); ``steady`` readers on each server,
    there the whole time; and one ``HoppingReader`` that leaves about every
    ``hop_every`` seconds and comes back at the other server with
    ``?since=``. ``start`` has everyone in the room before the first message
    and the sending under way; a fault goes between it and ``finish``.
    """

    def __init__(
        self,
        servers: list,
        room: str,
        *,
        senders: int = 6,
        per_second: float = 5,
        seconds: float = 10,
        steady: int = 2,
        hop_every: float = 0.7,
    ) -> None:
        self.servers = servers
        self.room = room
        self.sender_count = senders
        self.per_second = per_second
        self.count = round(per_second * seconds)
        self.steady_count = steady
        self.hopper = HoppingReader([server.ws_url for server in servers], room, "hopper", every=hop_every)
        self.readers: list[Recorder] = []
        self.senders: list[Sender] = []
        self._stop_hopping = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    @property
    def sent(self) -> list[str]:
        """Every text the senders send, sender by sender."""
        return [text for sender in self.senders for text in sender.texts]

    def acked(self) -> int:
        return sum(len(sender.acks) for sender in self.senders)

    def errors(self) -> int:
        return sum(len(sender.errors) for sender in self.senders)

    async def start(self) -> None:
        n = len(self.servers)
        self.readers = [
            await Recorder.join(self.servers[index % n].ws_url, self.room, f"steady-{index}")
            for index in range(self.steady_count * n)
        ]
        await self.hopper.join(self.servers[-1].ws_url)
        for index in range(self.sender_count):
            recorder = await Recorder.join(
                self.servers[index % n].ws_url, self.room, f"sender-{index}", client_id=f"c{index}-{uuid.uuid4().hex}"
            )
            self.senders.append(Sender(recorder, f"s{index}", count=self.count, per_second=self.per_second))
        await self.hopper.current.close()  # it starts hopping from the first server
        self._tasks = [asyncio.create_task(self.hopper.hop(self._stop_hopping))]
        self._tasks += [asyncio.create_task(sender.run()) for sender in self.senders]

    async def finish(self, timeout: float) -> int:
        """
        Wait (up to ``timeout`` seconds) for every sender to be done, stop the
        hopping, then wait up to ``WAIT`` for each reader to have seen the
        last seq any sender got back: a reader that does not is for the
        checker to judge. Returns that seq.
        """
        senders, hopping = self._tasks[1:], self._tasks[0]
        try:
            await asyncio.wait_for(asyncio.gather(*senders), timeout)
        except TimeoutError:
            progress = {s.prefix: f"{len(s.acks)}/{s.count} back, {len(s.errors)} errors" for s in self.senders}
            raise AssertionError(f"the senders were not done in {timeout} s: {progress}") from None
        self._stop_hopping.set()
        await asyncio.wait_for(hopping, WAIT)
        last = max((frame["seq"] for s in self.senders for frame in s.acks.values()), default=0)
        waits = [reader.wait_for(lambda r: r.largest_seq() >= last) for reader in self.readers]
        waits.append(self.hopper.current.wait_for(lambda _: self.hopper.largest_seq() >= last))
        await asyncio.gather(*waits, return_exceptions=True)
        return last

    def seen(self) -> dict[str, list[Seen]]:
        """What each reader saw: the steady ones, then the hopper."""
        seen = {f"steady-{index}": reader.sequence() for index, reader in enumerate(self.readers)}
        seen[self.hopper.name] = self.hopper.sequence()
        return seen

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        recorders = self.readers + [sender.recorder for sender in self.senders]
        await asyncio.gather(*(recorder.close() for recorder in recorders), self.hopper.close())


def delivery_seconds(traffic: RoomTraffic) -> dict[tuple[int, int], list[float]]:
    """
    Per pair of servers (their indexes in ``traffic.servers``: the sender's,
    the reader's), the seconds from each message's first send to its
    arrival at each steady reader.
    """
    n = len(traffic.servers)
    sent = {
        text: (index % n, at) for index, sender in enumerate(traffic.senders) for text, at in sender.first_sent.items()
    }
    found: dict[tuple[int, int], list[float]] = {(i, j): [] for i in range(n) for j in range(n)}
    for index, reader in enumerate(traffic.readers):
        for frame, arrived in zip(reader.frames, reader.arrivals, strict=True):
            if frame["type"] == protocol.MESSAGE and frame["message"] in sent:
                origin, at = sent[frame["message"]]
                found[origin, index % n].append(arrived - at)
    return found


async def traffic_checker(traffic: RoomTraffic, history: "History") -> dict[str, list[str]]:
    """
    The checker of the ordering experiments, over a finished ``RoomTraffic``:
    the stored history (the reference), every reader, and the history read
    forward page by page (``{"action": "history", "after": <seq>}``) hold
    every sent message once, in one order, seqs contiguous from 1; each
    sender got back what was stored, and gave up on nothing; the room's
    counter gave out one seq per stored message (none twice, none lost); no
    welcome was cut short. Per part, what went wrong; empty when all is well.
    """
    stored = history.stored(traffic.room)
    paged = await traffic.readers[0].page_forward()
    problems = sequence_checker({"stored": stored, **traffic.seen(), "paged forward": paged}, traffic.sent)
    if stored and stored[0][0] != 1:
        problems.setdefault("stored", []).append(f"the first seq is {stored[0][0]}, not 1")
    if (counter := history.counter(traffic.room)) != len(stored):
        problems["counter"] = [f"gave out {counter} seqs for {len(stored)} stored messages"]
    stored_pairs = set(stored)
    for sender in traffic.senders:
        wrong = [f"gave up on {text}" for text in sender.failed]
        wrong += [
            f"got back seq {f.get('seq')} for {t}"
            for t, f in sender.acks.items()
            if (f.get("seq"), t) not in stored_pairs
        ]
        if wrong:
            problems[sender.prefix] = wrong[:12]
    if cut := traffic.hopper.truncated():
        problems["hopper welcomes"] = [f"connections {cut} were told their history was truncated"]
    if traffic.hopper.name in problems:
        problems["hopper connections"] = traffic.hopper.connections()
    return problems


def sequence_checker(seen: dict[str, list[Seen]], sent: list[str]) -> dict[str, list[str]]:
    """
    One order for everyone, every message exactly once. ``seen``: per
    reader, the (seq, text) of the messages it got, in order; the first is
    the reference (the stored history, say). Per reader, what went wrong: a
    sent text missing, one seen twice or never sent, a message without a
    seq, a seq not above the one before or more than one above it, or a
    list other than the reference's. Empty when all is well.
    """
    problems: dict[str, list[str]] = {}
    (reference_name, reference), expected = next(iter(seen.items())), set(sent)
    for name, pairs in seen.items():
        counts = Counter(text for _, text in pairs)
        wrong = [f"missing {text}" for text in sent if counts[text] == 0]
        wrong += [f"{n} times {text}" for text, n in counts.items() if n > 1]
        wrong += [f"never sent: {text}" for text in counts if text not in expected]
        seqs = [seq for seq, _ in pairs]
        if None in seqs:
            wrong.append(f"{seqs.count(None)} messages without a seq")
        else:
            for before, after in itertools.pairwise(seqs):
                if after <= before:
                    wrong.append(f"seq {after} after {before}")
                elif after != before + 1:
                    wrong.append(f"gap: seq {before} then {after}")
        if name != reference_name and pairs != reference:
            compared = enumerate(zip(pairs, reference, strict=False))
            at = next((i for i, (a, b) in compared if a != b), min(len(pairs), len(reference)))
            wrong.append(
                f"differs from {reference_name} at #{at}: {pairs[at : at + 2]} against {reference[at : at + 2]}"
                f" ({len(pairs)} messages against {len(reference)})"
            )
        if wrong:
            problems[name] = wrong[:12] + ([f"... and {len(wrong) - 12} more"] if len(wrong) > 12 else [])
    return problems


def messages_exactly_once(readers: list[Recorder | Reconnecting], sent: list[str]) -> dict[str, list[str]]:
    """Per reader, what went wrong: a sent message missing or seen twice. Empty when all is well."""
    problems = {}
    for reader in readers:
        seen = Counter(text for text in reader.messages() if text in set(sent))
        wrong = [f"missing {t}" for t in sent if seen[t] == 0] + [f"twice {t}" for t in sent if seen[t] > 1]
        if wrong:
            problems[reader.connection_id] = wrong
    return problems


class Registry:
    """
    The connection registry as DynamoDB Local holds it (read consistently):
    the tables every test shares, or with ``of_its_own`` tables no other test
    writes, for a checker that must see only its own processes' work. ``env``
    points a daphne at the tables.
    """

    def __init__(
        self, dynamodb_local, *, connections_table: str = "ChatConnections", instances_table: str = "ChatInstances"
    ) -> None:
        self.client = dynamodb_local.client()
        self.connections_table = connections_table
        self.instances_table = instances_table
        self.env = {"CHAT_CONNECTIONS_TABLE": connections_table, "CHAT_INSTANCES_TABLE": instances_table}

    @classmethod
    async def of_its_own(cls, dynamodb_local) -> "Registry":
        """A registry in new tables, created as ``ensure_tables`` creates them."""
        from django.conf import settings

        from chat.stores.dynamodb import DynamoDBConnectionStore

        suffix = uuid.uuid4().hex[:8]
        registry = cls(
            dynamodb_local, connections_table=f"ChatConnections-{suffix}", instances_table=f"ChatInstances-{suffix}"
        )
        options = settings.CHAT_CONNECTION_STORE["OPTIONS"]
        store = DynamoDBConnectionStore(
            **{**options, "table_name": registry.connections_table, "instances_table_name": registry.instances_table}
        )
        await store.ensure_tables()
        return registry

    def has(self, connection_id: str) -> bool:
        key = {"connectionId": {"S": connection_id}}
        return "Item" in self.client.get_item(TableName=self.connections_table, Key=key, ConsistentRead=True)

    def room(self, room: str) -> set[str]:
        """Connection ids the room index lists for ``room`` (an index: eventually consistent)."""
        found: set[str] = set()
        params = {
            "TableName": self.connections_table,
            "IndexName": "room-index",
            "KeyConditionExpression": "room = :room",
            "ExpressionAttributeValues": {":room": {"S": room}},
        }
        for _ in range(100):
            page = self.client.query(**params)
            found |= {item["connectionId"]["S"] for item in page["Items"]}
            if "LastEvaluatedKey" not in page:
                return found
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        raise AssertionError("room index pages did not end")

    def held_by(self, instance_id: str) -> set[str]:
        page = self.client.query(
            TableName=self.connections_table,
            IndexName="instance-index",
            KeyConditionExpression="instanceId = :instance",
            ExpressionAttributeValues={":instance": {"S": instance_id}},
        )
        return {item["connectionId"]["S"] for item in page["Items"]}

    def missing(self, connection_ids: set[str]) -> set[str]:
        """Those of ``connection_ids`` that have no registry item (each read consistently)."""
        return {cid for cid in connection_ids if not self.has(cid)}

    def heartbeat(self, instance_id: str) -> dict | None:
        key = {"instanceId": {"S": instance_id}}
        return self.client.get_item(TableName=self.instances_table, Key=key, ConsistentRead=True).get("Item")

    def swept_by(self, instance_id: str) -> str | None:
        """The sweeper that claimed this process's heartbeat ("" if none); None when the heartbeat is gone."""
        item = self.heartbeat(instance_id)
        return None if item is None else item.get("sweptBy", {}).get("S", "")

    def wait_for_room(self, room: str, expected: set[str], timeout: float = 20) -> None:
        wait_until(
            lambda: self.room(room) == expected, timeout=timeout, what=f"the registry of {room} to be {expected}"
        )


class History:
    """
    A room's history as DynamoDB Local holds it (read consistently), and
    its seq counter in ``ChatRooms``: the last seq it gave out.
    """

    def __init__(self, dynamodb_local, *, messages_table: str = "ChatMessages", rooms_table: str = "ChatRooms") -> None:
        self.client = dynamodb_local.client()
        self.messages_table = messages_table
        self.rooms_table = rooms_table

    def items(self, room: str) -> list[dict[str, Any]]:
        """Every stored message of ``room`` in seq order: its seq, text, id and clientMessageId."""
        items: list[dict[str, Any]] = []
        params = {
            "TableName": self.messages_table,
            "KeyConditionExpression": "room = :room",
            "ExpressionAttributeValues": {":room": {"S": room}},
            "ConsistentRead": True,
        }
        for _ in range(1000):
            page = self.client.query(**params)
            items += [
                {
                    "seq": int(item["seq"]["N"]),
                    "message": item["message"]["S"],
                    "id": item["id"]["S"],
                    "clientMessageId": item.get("clientMessageId", {}).get("S"),
                }
                for item in page["Items"]
            ]
            if "LastEvaluatedKey" not in page:
                return items
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        raise AssertionError("history pages did not end")

    def stored(self, room: str) -> list[Seen]:
        return [(item["seq"], item["message"]) for item in self.items(room)]

    def counter(self, room: str) -> int:
        key = {"key": {"S": f"seq#{room}"}}
        item = self.client.get_item(TableName=self.rooms_table, Key=key, ConsistentRead=True).get("Item")
        return int(item["seq"]["N"]) if item else 0


class RawSocket:
    """
    A WebSocket client on a plain TCP socket: it completes the handshake
    and then does only what the test says (read or not, answer or not).
    """

    def __init__(self, port: int, path: str, *, host: str = "127.0.0.1", receive_buffer: int | None = None) -> None:
        self.sock = socket.socket()
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(WAIT)
        self.sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])

    @staticmethod
    def chat_path(room: str, **query: str) -> str:
        return f"/ws/chat/{room}/" + (f"?{urlencode(query)}" if query else "")

    def read_frame(self) -> tuple[int, bytes]:
        """One frame from the server: (opcode, payload). Blocks up to the socket's timeout."""
        while True:
            frame = self._parse()
            if frame is not None:
                return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk

    def _parse(self) -> tuple[int, bytes] | None:
        data = self.buffer
        if len(data) < 2:
            return None
        opcode, length, offset = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                return None
            (length,), offset = struct.unpack(">H", data[2:4]), 4
        elif length == 127:
            if len(data) < 10:
                return None
            (length,), offset = struct.unpack(">Q", data[2:10]), 10
        if len(data) < offset + length:
            return None
        self.buffer = data[offset + length :]
        return opcode, data[offset : offset + length]

    def read_json(self) -> Frame:
        """The next text frame, decoded (control frames are passed over)."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == 0x1:
                return json.loads(payload)
            if opcode == 0x8:
                raise ConnectionError(f"closed by the server: {payload[:2].hex()}")

    def send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        header = bytes([0x81]) + (
            bytes([0x80 | len(payload)])
            if len(payload) < 126
            else bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        )
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self) -> None:
        self.sock.close()


# --- Faults ---------------------------------------------------------------------


def send_signal(server, sig: signal.Signals) -> float:
    """Signal a daphne process itself (SIGSTOP, SIGCONT, SIGTERM, SIGKILL); returns the monotonic moment."""
    os.kill(server.process.process.pid, sig)
    return time.monotonic()


# --- Checkers and what operators see ---------------------------------------------


def told_to_reconnect(client: Recorder) -> bool:
    """The server said ``server_restart`` in an error frame, then closed with 1012 (reconnect elsewhere)."""
    said = any(frame.get("code") == protocol.SERVER_RESTART for frame in client.of_type(protocol.ERROR))
    return said and client.close_code == protocol.CLOSE_SERVICE_RESTART


def api_status(server, connection_id: str, token: str) -> int:
    """What ``GET /@connections/<id>`` on ``server`` answers: 200 for a live connection, 410 for a gone one."""
    response = requests.get(
        f"{server.url}/@connections/{connection_id}", headers={"Authorization": f"Bearer {token}"}, timeout=WAIT
    )
    return response.status_code


def aws_operations(server) -> list[dict]:
    """The distinct AWS operations a server's process made so far, as ``aws_recorder`` wrote them."""
    directory = Path(os.environ[aws_recorder.ENV])
    return [
        json.loads(line)
        for path in directory.glob(f"{server.process.process.pid}-*.jsonl")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def logged(server, message: str) -> list[str]:
    """The lines of a server's log that carry ``message``."""
    return [line for line in server.output().splitlines() if message in line]


async def eventually(predicate: Callable[[], object], *, timeout: float, what: str) -> Any:
    """``wait_until`` on a thread: the registry is polled while every recorder goes on reading."""
    return await asyncio.to_thread(wait_until, predicate, timeout=timeout, what=what)


async def until(predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` on the event loop (for what recorders and senders hold) until truthy, within ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := predicate()):
        if loop.time() >= deadline:
            raise TimeoutError(f"{what} not seen in {timeout} s")
        await asyncio.sleep(interval)
    return result
