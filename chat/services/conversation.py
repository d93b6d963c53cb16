"""
What people do to a conversation besides sending: say they are typing,
react to a message, edit or delete their own, and reply to one. A change
to a message is written to the message first, then told to the room as an
event with a seq of its own, stored beside the messages, so a client that
was away replays it in order when it recovers.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings

from .. import protocol
from ..exceptions import ProtocolError, UnknownMessage
from ..relay import get_room_relay
from ..stores import Connection, get_message_store
from ..uploads.attachments import forget as forget_attachments
from .rooms import room_send

logger = logging.getLogger(__name__)

# (room, sender tag) -> when this process last forwarded their typing frame (monotonic).
_typing_forwarded: dict[tuple[str, str], float] = {}
_TYPING_KEPT = 10_000


async def typing_broadcast(*, sender: Connection, tag: str) -> bool:
    """
    ``typing``: tell everyone else in the room, at most once per sender every
    ``TYPING_INTERVAL`` seconds, and never in a room of more than
    ``CHAT_PRESENCE_LIMIT`` people. False when this one was not forwarded.
    """
    now = time.monotonic()
    key = (sender.room, tag)
    if now - _typing_forwarded.get(key, float("-inf")) < protocol.TYPING_INTERVAL:
        return False
    room = get_room_relay().rooms.get(sender.room)
    if room is None or len(room.roster) > settings.CHAT_PRESENCE_LIMIT:
        return False
    if len(_typing_forwarded) >= _TYPING_KEPT:
        _forget_typing(now)
    _typing_forwarded[key] = now
    frame = protocol.typing_frame(room=sender.room, connection_id=sender.connection_id, name=sender.name, sender=tag)
    await room_send(room=sender.room, frame=frame, exclude=sender.connection_id)
    return True


def _forget_typing(now: float) -> None:
    for key in [k for k, at in _typing_forwarded.items() if now - at >= protocol.TYPING_INTERVAL]:
        del _typing_forwarded[key]


async def message_find(*, room: str, message_id: str) -> dict[str, Any]:
    """The message of ``room`` with this id, in its current state; ``UnknownMessage`` if none."""
    message = await get_message_store().find(room, message_id)
    if message is None:
        raise UnknownMessage(f"no message {message_id} in {room}")
    return message


async def reply_quote(*, room: str, message_id: str) -> dict[str, Any]:
    """How a reply in ``room`` quotes the message it answers; ``ProtocolError`` if the room has no such message."""
    try:
        return protocol.reply_quote(await message_find(room=room, message_id=message_id))
    except UnknownMessage:
        raise ProtocolError(protocol.INVALID_MESSAGE, '"replyTo" names no message of this room.') from None


async def message_react(*, sender: Connection, tag: str, message_id: str, emoji: str) -> dict[str, Any]:
    """``react``: toggle the sender's ``emoji`` on a message of their room; the ``reaction`` frame sent."""
    room = sender.room
    message = await message_find(room=room, message_id=message_id)
    now, added = await get_message_store().react(
        room, message["seq"], emoji=emoji, who=tag, limit=protocol.MAX_REACTIONS_PER_PERSON
    )
    return await _tell(
        room,
        lambda seq: protocol.reaction_frame(
            seq=seq,
            room=room,
            message_id=message_id,
            reactions=now["reactions"],
            version=now["version"],
            emoji=emoji,
            added=added,
            sender=tag,
        ),
    )


async def message_edit(*, sender: Connection, tag: str, message_id: str, text: str) -> dict[str, Any]:
    """``editMessage``: the sender's own message, within ``CHAT_EDIT_WINDOW`` of sending it; the frame sent."""
    room = sender.room
    message = await message_find(room=room, message_id=message_id)
    if message.get("deleted"):
        raise UnknownMessage(f"message {message_id} in {room} was deleted")
    if message.get("sender") != tag:
        raise ProtocolError(protocol.NOT_ALLOWED, "Only the person who sent a message may edit it.")
    window = settings.CHAT_EDIT_WINDOW
    if time.time() - datetime.fromisoformat(message["sentAt"]).timestamp() > window:
        minutes = window // 60 if window >= 60 else f"{window} seconds"
        raise ProtocolError(
            protocol.EDIT_WINDOW_PASSED, f"Messages can be edited for {minutes} minutes after they are sent."
        )
    edited_at = protocol.iso_timestamp()
    now = await get_message_store().edit(room, message["seq"], text=text, edited_at=edited_at)
    return await _tell(
        room,
        lambda seq: protocol.edited_frame(
            seq=seq, room=room, message_id=message_id, text=text, edited_at=edited_at, version=now["version"]
        ),
    )


async def message_delete(
    *, room: str, message_id: str, tag: str | None = None, operator: bool = False
) -> dict[str, Any] | None:
    """
    ``deleteMessage``: by its sender (``tag``) at any time, or by an
    operator. The history keeps a tombstone; the room gets
    ``message_deleted``. None when it was deleted already.
    """
    message = await message_find(room=room, message_id=message_id)
    if not operator and (tag is None or message.get("sender") != tag):
        raise ProtocolError(protocol.NOT_ALLOWED, "Only the person who sent a message, or an operator, may delete it.")
    now = await get_message_store().delete(room, message["seq"])
    if now is None:
        return None
    await forget_attachments(message)
    logger.info(
        "message deleted", extra={"room": room, "message_id": message_id, "by": "operator" if operator else "sender"}
    )
    return await _tell(
        room, lambda seq: protocol.deleted_frame(seq=seq, room=room, message_id=message_id, version=now["version"])
    )


async def _tell(room: str, build: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """Give a change to a message its place in the room's order, store it, and send it to the room."""
    store = get_message_store()
    seq = await store.next_seq(room)
    frame = build(seq)
    try:
        await store.append(frame, expires_at=int(time.time()) + settings.CHAT_HISTORY_RETENTION)
    except Exception:
        # The message itself holds the change; only replaying the event is lost.
        logger.warning("message event not stored", exc_info=True, extra={"room": room, "seq": seq})
    try:
        await room_send(room=room, frame=frame, seq=seq)
    except Exception:
        get_room_relay().distrust_recent(room)
        raise
    return frame


def current_quotes(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    Bring the quotes of replies up to date with the messages they answer,
    where those are in the same list (edited since, or deleted).
    """
    by_id = {m["id"]: m for m in messages if protocol.is_message(m)}
    fresh = []
    for message in messages:
        quoted = by_id.get((message.get("replyTo") or {}).get("id"))
        if quoted is not None:
            message = {**message, "replyTo": protocol.reply_quote(quoted)}
        fresh.append(message)
    return fresh
