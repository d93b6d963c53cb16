"""
What people do: connect, send, read history, leave. The consumer comes
through here, never around these functions into the stores or the layer.
"""

import asyncio
import hashlib
import itertools
import logging
import time
from collections.abc import Awaitable
from typing import Any, NamedTuple

from django.conf import settings

from .. import metrics, protocol
from ..exceptions import StoreError
from ..relay import LocalSocket, Room, get_room_relay
from ..stores import Connection, get_connection_store, get_message_store
from ..stores.base import SEND_PENDING
from ..uploads.attachments import stored, with_urls
from .conversation import current_quotes, reply_quote
from .rooms import recent_items, room_announce, room_seed, room_send

logger = logging.getLogger(__name__)

# How many members one welcome frame lists at most.
WELCOME_MEMBERS_LIMIT = 1000
# Seconds a message waits for its history write before it is sent regardless.
HISTORY_WRITE_TIMEOUT = 2.0


def connection_new(
    *, connection_id: str, room: str, name: str, source_ip: str, user_agent: str, sender: str = ""
) -> Connection:
    """
    A connection record as ``$connect`` registers it. Its ``channelName`` is
    this process's room relay channel (started by ``ServerInstance.start``),
    which reaches the socket from any process.
    """
    return Connection(
        connection_id=connection_id,
        channel_name=get_room_relay().channel,
        room=room,
        name=name,
        connected_at=protocol.iso_timestamp(),
        instance_id=settings.CHAT_INSTANCE_ID,
        source_ip=source_ip,
        user_agent=user_agent,
        expires_at=int(time.time()) + settings.CHAT_CONNECTION_TTL,
        sender=sender,
    )


class Registration(NamedTuple):
    """What a welcome frame says, and the seq up to which live messages are skipped (history or client has them)."""

    members: list[dict[str, str]]
    history: list[dict[str, Any]]
    truncated: bool
    after_seq: int


async def connection_register(*, socket: LocalSocket, since: int | str | None = None) -> Registration:
    """
    ``$connect``: record the connection, subscribe its socket to the room
    and tell the room, the three side by side. Returns the members and the
    history for the welcome frame: the latest messages, or with ``since`` (a seq, or the id of a
    message as cursors were before seqs) every message after it; when more
    than the recovery limit, or more than ``CHAT_MAX_HISTORY_BYTES``, the
    latest that fit, and ``truncated``. Live messages wait in ``socket``
    until it is ready, so none falls between the history and the live
    stream. On any failure, cancellation included, it is undone whole
    (registry item, room membership, and a ``leave`` for a ``join`` already
    announced, even when the registry write is what failed) and the error
    propagates.
    """
    connection = socket.connection
    store = get_connection_store()
    relay = get_room_relay()

    async def join_and_read() -> tuple[Room, list[dict[str, Any]], bool, int]:
        # The socket joins before the history is read, so no message falls between them.
        room = await relay.join(connection.room, socket, seed=room_seed)
        # Where this process's ordered delivery stands: every message up to it is stored, and the ones after
        # it reach the socket live, in seq order.
        delivered = room.last_seq or 0
        messages = get_message_store()
        after = since
        if isinstance(since, str):  # an id: the messages whose ids sort above it
            after = await messages.seq_by_id(connection.room, since, inclusive=True)
        more = False
        if after is None:
            history = room.latest()
            if history is None:
                history = await messages.latest(connection.room, limit=recent_items())
        else:
            # Recovery always reads the store: a message another process stored but
            # could not publish is in the store, and in no process's memory.
            limit = settings.CHAT_RECOVERY_LIMIT
            history, more = await messages.after(connection.room, after, limit=limit)
            if more:  # away too long to replay everything: the latest, so live ones follow on without a gap
                history = await messages.latest(connection.room, limit=limit)
        # Past the delivery the store may hold a message while an earlier one is still being written: a hole
        # that live frames up to the history's end would be skipped as seen. So the history goes past it only
        # as far as it follows on without a hole; the live stream brings the rest in order.
        upto = max(delivered, after or 0)
        if more and history:  # the latest only: what comes before them is the client's to page back to
            upto = max(delivered, history[0]["seq"] - 1)
        for index, message in enumerate(history):
            if message["seq"] > upto + 1:
                history = history[:index]
                break
            upto = max(upto, message["seq"])
        if after is None:
            # A first visit gets messages in their current state; the events about them add nothing.
            history = [m for m in history if protocol.is_message(m)][-settings.CHAT_HISTORY_LIMIT :]
        history, cut = protocol.latest_within(with_urls(current_quotes(history)), settings.CHAT_MAX_HISTORY_BYTES)
        return room, history, more or cut, upto

    async def register() -> None:
        await store.register(connection)
        socket.registered = True

    async def announce() -> None:
        socket.announced = True  # a failed publish may still have reached some: its leave is owed either way
        await room_announce(connection, protocol.JOIN)

    try:
        # The registry write, the room's side and the join's announcement run together: one round trip, not three.
        outcomes = await asyncio.gather(register(), join_and_read(), announce(), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        room, history, truncated, after_seq = outcomes[1]
        room.roster[connection.connection_id] = connection.name
        members = [
            protocol.member(cid, name) for cid, name in itertools.islice(room.roster.items(), WELCOME_MEMBERS_LIMIT)
        ]
    except BaseException:
        await _undo(connection_disconnect(socket=socket))
        raise
    logger.info("connection registered", extra={"connection_id": connection.connection_id, "room": connection.room})
    return Registration(members, history, truncated, after_seq)


async def _undo(cleanup: Awaitable[None]) -> None:
    """Run a clean-up to its end even if the caller is being cancelled; log what it could not do."""
    task = asyncio.ensure_future(cleanup)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("clean-up after a failed connect failed")


async def connection_disconnect(*, socket: LocalSocket) -> None:
    """
    ``$disconnect``, and the undoing of a connect that failed half-way:
    unsubscribe the socket, forget the connection, tell the room it left if
    it was told it joined. Idempotent. A drained socket's registry item is
    the drain's to remove (in a batch).
    """
    connection = socket.connection
    try:
        await get_room_relay().leave(connection.room, connection.connection_id)
    finally:
        if not socket.drained:
            removed = None
            try:
                removed = await get_connection_store().remove(connection.connection_id)
            finally:
                # A registered connection whose item is gone was swept, and the sweep told the room;
                # one never registered (its connect failed, DynamoDB perhaps down) no sweep knows of.
                if socket.announced and (removed is not None or not socket.registered):
                    socket.announced = False
                    await room_announce(connection, protocol.LEAVE)
    logger.info("connection removed", extra={"connection_id": connection.connection_id, "room": connection.room})


async def message_broadcast(
    *,
    sender: Connection,
    identity: str,
    text: str,
    client_message_id: str | None = None,
    reply_to: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any] | None, bool]:
    """
    ``sendMessage``: give the message the room's next seq, store it, then
    send it to everyone in the sender's room, the sender included. Stored
    first, so a client that recovers from the history never misses what was
    delivered live; if the history cannot be written in time, it still goes
    out live. Without a seq (the store cannot give one) it is not sent.
    ``reply_to``: the id of the message of the room it answers, quoted in
    the frame (``ProtocolError`` if the room has no such message).
    ``attachments``: checked files (``chat.uploads.attachments.checked``);
    stored without URLs, sent with fresh ones.

    With ``client_message_id``, a send that ``identity`` already made in
    this room within ``CHAT_DEDUP_WINDOW`` is not made again: returns
    ``(original frame, True)`` for the sender alone, or ``(None, True)``
    while the first is still under way. Otherwise ``(frame, False)``.
    """
    store = get_message_store()
    room = sender.room
    quote = await _quote(room, reply_to) if reply_to else None
    key = None
    if client_message_id:
        key = _send_key(room, identity, client_message_id)
        original = await store.claim_send(key, expires_at=int(time.time()) + settings.CHAT_DEDUP_WINDOW)
        if original is not None:
            logger.info("resent message not sent again", extra={"room": room, "seq": original or None})
            again = await store.get(room, original) if original != SEND_PENDING else None
            return (with_urls([again])[0] if again else None), True
    seq = await store.next_seq(room)  # failing, the claim lapses after PENDING_SEND_LAPSE: a retry goes ahead
    frame = protocol.message_frame(
        message_id=protocol.new_message_id(),
        seq=seq,
        room=room,
        connection_id=sender.connection_id,
        name=sender.name,
        text=text,
        sent_at=protocol.iso_timestamp(),
        client_message_id=client_message_id,
        sender=protocol.sender_tag(identity),
        reply_to=quote,
        attachments=stored(attachments) if attachments else None,
    )
    expires_at = int(time.time()) + settings.CHAT_HISTORY_RETENTION
    # The claim is settled beside the history write, not after it: were the write to fail or
    # time out, a resend must still find this send made rather than make it a second time.
    writes = [store.append(frame, expires_at=expires_at)] + ([store.settle_send(key, seq)] if key else [])
    outcomes = await asyncio.gather(
        *(asyncio.wait_for(w, HISTORY_WRITE_TIMEOUT) for w in writes), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, (StoreError, TimeoutError)):
            logger.warning("message not stored: %s", outcome or "timed out", extra={"room": room, "seq": seq})
        elif isinstance(outcome, BaseException):
            raise outcome
    if attachments:
        frame = with_urls([frame])[0]
    try:
        await room_send(room=room, frame=frame, message_id=frame["id"], seq=seq)
    except Exception:
        get_room_relay().distrust_recent(room)  # stored, but this process never relayed it
        raise
    metrics.MESSAGES.inc()
    return frame, False


async def _quote(room: str, message_id: str) -> dict[str, Any]:
    """The quote of a message this process's relay remembers (kept current by its events), else the store's."""
    relayed = get_room_relay().rooms.get(room)
    for message in reversed((relayed and relayed.latest()) or []):
        if message.get("id") == message_id and protocol.is_message(message):
            return protocol.reply_quote(message)
    return await reply_quote(room=room, message_id=message_id)


async def message_resent(*, room: str, identity: str, client_message_id: str) -> bool:
    """Whether this sender already sent (or is sending) ``client_message_id`` in ``room``: sending it is a resend."""
    return await get_message_store().claimed(_send_key(room, identity, client_message_id))


def _send_key(room: str, identity: str, client_message_id: str) -> str:
    # Hashed: a guest's identity is a secret that proves who they are, and is not stored as it is.
    return hashlib.sha256(f"{room}\0{identity}\0{client_message_id}".encode()).hexdigest()


async def history_page(*, room: str, before: int | str | None = None, after: int | None = None) -> dict[str, Any]:
    """
    The ``history`` action: the page of messages just before ``before`` (a
    seq, or a message id), or just after ``after`` (a seq), within
    ``CHAT_MAX_HISTORY_BYTES``; ``more`` says whether the client should ask again.
    """
    store = get_message_store()
    limit = settings.CHAT_HISTORY_LIMIT
    if after is not None:
        # Forward, the room's stream replays: messages, and the events about them.
        messages, more = await store.after(room, after, limit=limit)
        # Forward pages keep the earliest that fit, so the next page starts where this one ends.
        messages, cut = protocol.earliest_within(with_urls(current_quotes(messages)), settings.CHAT_MAX_HISTORY_BYTES)
        return protocol.history_frame(messages=messages, more=more or cut)
    if isinstance(before, str):  # an id: the messages whose ids sort below it
        before = await store.seq_by_id(room, before, inclusive=False) + 1
    # Back, messages only: each already in its current state. An event in the page leaves it shorter.
    items, more = await store.before(room, before, limit=limit)
    messages = with_urls(current_quotes([m for m in items if protocol.is_message(m)]))
    messages, cut = protocol.latest_within(messages, settings.CHAT_MAX_HISTORY_BYTES)
    return protocol.history_frame(messages=messages, more=more or cut)
