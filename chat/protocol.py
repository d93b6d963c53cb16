"""
The wire protocol: every action, frame type, error code and limit, with the
builders and the parser that the consumer, the admin, the ``@connections``
API and the tests share.

Clients send JSON objects whose ``action`` picks a route, as API Gateway's
route selection expression ``$request.body.action`` does. The server sends
JSON objects with a ``type``.
"""

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from .exceptions import ProtocolError

# --- Routes ------------------------------------------------------------------

SEND_MESSAGE = "sendMessage"
HISTORY = "history"
TYPING = "typing"
REACT = "react"
EDIT_MESSAGE = "editMessage"
DELETE_MESSAGE = "deleteMessage"
# Routes as the client names them; ``sendmessage`` is what clients of the
# aws-samples simple-websockets-chat-app send.
ACTIONS = {
    SEND_MESSAGE: SEND_MESSAGE,
    "sendmessage": SEND_MESSAGE,
    HISTORY: HISTORY,
    TYPING: TYPING,
    REACT: REACT,
    EDIT_MESSAGE: EDIT_MESSAGE,
    DELETE_MESSAGE: DELETE_MESSAGE,
}
# Field aliases: aws-samples clients put the text in ``data``.
MESSAGE_FIELDS = ("message", "data")

# --- Frames the server sends -------------------------------------------------

WELCOME = "welcome"
PRESENCE = "presence"
MESSAGE = "message"
ERROR = "error"
SYSTEM = "system"
# Someone is typing: not stored, not ordered.
TYPING_FRAME = "typing"
# Changes to a message: each has a seq of its own, in the room's order, after the message's.
REACTION = "reaction"
MESSAGE_EDITED = "message_edited"
MESSAGE_DELETED = "message_deleted"
MESSAGE_EVENTS = frozenset({REACTION, MESSAGE_EDITED, MESSAGE_DELETED})

JOIN = "join"
LEAVE = "leave"

# --- Error codes ---------------------------------------------------------------

BAD_JSON = "bad_json"
BAD_FRAME = "bad_frame"
UNKNOWN_ACTION = "unknown_action"
INVALID_MESSAGE = "invalid_message"
MESSAGE_TOO_LONG = "message_too_long"
INVALID_CURSOR = "invalid_cursor"
FRAME_TOO_LARGE = "frame_too_large"
RATE_LIMITED = "rate_limited"
SERVER_ERROR = "server_error"
UNKNOWN_MESSAGE = "unknown_message"
INVALID_REACTION = "invalid_reaction"
TOO_MANY_REACTIONS = "too_many_reactions"
NOT_ALLOWED = "not_allowed"
EDIT_WINDOW_PASSED = "edit_window_passed"
INVALID_ATTACHMENT = "invalid_attachment"
# Moderation: refusals of a send.
MUTED = "muted"
ROOM_LOCKED = "room_locked"
SLOW_MODE = "slow_mode"
# Sent just before the server closes a socket (with the matching close code).
FLOODING = "flooding"
IDLE_TIMEOUT = "idle_timeout"
MAX_DURATION = "max_duration"
LOGIN_REQUIRED = "login_required"
SERVER_UNAVAILABLE = "server_unavailable"
SLOW_CONSUMER = "slow_consumer"
SERVER_RESTART = "server_restart"

# --- Limits and names --------------------------------------------------------

DEFAULT_ROOM = "lobby"
ROOM_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_MAX_LENGTH = 32
GUEST_PREFIX = "guest-"
# A connection's lastActiveAt is written at most this often (seconds), by the process holding it.
LAST_ACTIVE_INTERVAL = 60
# Distinct emoji one sender may put on one message.
MAX_REACTIONS_PER_PERSON = 20
# A reply quotes this many characters of the message it answers.
EXCERPT_LENGTH = 140
# Attachments one message may carry.
MAX_ATTACHMENTS = 10
# Seconds between two typing frames one sender's are forwarded.
TYPING_INTERVAL = 2.0

# Close codes (RFC 6455, and 4000-4999 for this application). daphne does not
# pass a close reason on, so the server sends an ``error`` frame with the
# matching code and a sentence first, then closes with the number.
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008  # kept flooding past the rate limit
CLOSE_SERVER_ERROR = 1011  # the registry (DynamoDB) or Redis is unavailable
CLOSE_SERVICE_RESTART = 1012  # this process is shutting down: reconnect at once, elsewhere
CLOSE_IDLE = 4000  # no activity for the idle limit
CLOSE_MAX_DURATION = 4001  # open for the longest time a connection may last
CLOSE_BY_OPERATOR = 4003  # an operator disconnected it (admin or @connections)
CLOSE_SLOW_CONSUMER = 4008  # the client read too slowly: the server held too much unsent for it
CLOSE_LOGIN_REQUIRED = 4401  # anonymous visitors are not allowed here


# --- Validation ----------------------------------------------------------------


def valid_room(room: str) -> bool:
    """True when ``room`` is 1 to 64 of A-Z a-z 0-9 _ -."""
    return ROOM_PATTERN.fullmatch(room) is not None


# --- Ids and times ---------------------------------------------------------------

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_last_id = [0, 0]  # milliseconds, random part of the last id made here


def new_message_id() -> str:
    """
    A ULID: 26 characters that sort by creation time. Ids made in the same
    millisecond by this process still sort in the order they were made.
    """
    now = time.time_ns() // 1_000_000
    if now <= _last_id[0]:
        now, rand = _last_id[0], _last_id[1] + 1
    else:
        rand = secrets.randbits(80)
    _last_id[0], _last_id[1] = now, rand
    value = (now << 80) | (rand & ((1 << 80) - 1))
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_connection_id() -> str:
    """An opaque id like API Gateway's (16 URL-safe characters)."""
    return secrets.token_urlsafe(12)


def iso_timestamp_of(epoch: float) -> str:
    """``iso_timestamp`` of a time given in epoch seconds."""
    return iso_timestamp(datetime.fromtimestamp(epoch, UTC))


def iso_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``: ``2026-11-25T12:00:00.000Z``."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- Parsing client frames ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One client frame: the route it selected and the whole JSON object."""

    action: str
    body: dict[str, Any]


def parse_request(text: str | None = None, data: bytes | None = None) -> Request:
    """
    Decode a client frame and select its route, or raise ``ProtocolError``
    with the code of the ``$default`` answer.
    """
    if text is None:
        raise ProtocolError(BAD_FRAME, "Binary frames are not understood: send JSON as text.")
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError(
            BAD_JSON, 'That was not valid JSON. Send an object such as {"action": "sendMessage", "message": "hi"}.'
        ) from None
    if not isinstance(body, dict):
        raise ProtocolError(BAD_FRAME, 'Send a JSON object such as {"action": "sendMessage", "message": "hi"}.')
    action = body.get("action")
    route = ACTIONS.get(action) if isinstance(action, str) else None
    if route is None:
        shown = "no action" if action is None else f"the action {str(action)[:40]!r}"
        raise ProtocolError(
            UNKNOWN_ACTION,
            f"This server has no route for {shown}. Use one of: {', '.join(sorted(set(ACTIONS.values())))}.",
        )
    return Request(action=route, body=body)


def message_text(body: dict[str, Any], *, max_length: int) -> str:
    """The trimmed text of a ``sendMessage`` request, or ``ProtocolError``."""
    raw = next((body[field] for field in MESSAGE_FIELDS if field in body), None)
    if not isinstance(raw, str) or not raw.strip():
        raise ProtocolError(INVALID_MESSAGE, 'Put the text to send in "message", as a non-empty string.')
    text = raw.strip()
    if len(text) > max_length:
        raise ProtocolError(
            MESSAGE_TOO_LONG,
            f"That message has {len(text)} characters; the limit is {max_length}. Shorten it or split it.",
        )
    return text


MESSAGE_ID_PATTERN = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def valid_message_id(value: str | None) -> bool:
    return isinstance(value, str) and MESSAGE_ID_PATTERN.fullmatch(value) is not None


def message_id_field(body: dict[str, Any], field: str = "messageId") -> str:
    """The id of a message that a request names, or ``ProtocolError``."""
    value = body.get(field)
    if not valid_message_id(value):
        raise ProtocolError(INVALID_MESSAGE, f'Put the id of a message of this room in "{field}".')
    return value


def attachments_field(body: dict[str, Any]) -> list[str] | None:
    """
    The keys of a ``sendMessage``'s optional ``attachments``
    (``[{"key": ...}]``, 1 to ``MAX_ATTACHMENTS``), or ``ProtocolError``.
    """
    value = body.get("attachments")
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_ATTACHMENTS
        or not all(isinstance(a, dict) and isinstance(a.get("key"), str) and 0 < len(a["key"]) <= 300 for a in value)
    ):
        raise ProtocolError(
            INVALID_ATTACHMENT,
            f'Put 1 to {MAX_ATTACHMENTS} objects {{"key": "..."}} of uploaded files in "attachments".',
        )
    keys = [a["key"] for a in value]
    if len(set(keys)) != len(keys):
        raise ProtocolError(INVALID_ATTACHMENT, "The same file is attached twice.")
    return keys


def reply_to_field(body: dict[str, Any]) -> str | None:
    """The optional ``replyTo`` of a ``sendMessage``, or ``ProtocolError``."""
    return None if body.get("replyTo") is None else message_id_field(body, "replyTo")


_EMOJI: Any = None


def emoji_field(body: dict[str, Any]) -> str:
    """
    The ``emoji`` of a ``react``: exactly one emoji (Unicode's RGI set, as
    ICU knows it: modifiers, ZWJ sequences and flags included), or
    ``ProtocolError``. A symbol sent without its emoji presentation
    selector (``❤`` for ``❤️``) counts as the emoji.
    """
    global _EMOJI
    if _EMOJI is None:
        import icu

        emoji = icu.UnicodeSet("[:RGI_Emoji:]")
        emoji.freeze()  # frozen: safe to share between threads
        _EMOJI = emoji
    value = body.get("emoji")
    if isinstance(value, str) and 0 < len(value) <= 32:
        if _EMOJI.contains(value):
            return value
        if _EMOJI.contains(value + "\ufe0f"):
            return value + "\ufe0f"
    raise ProtocolError(INVALID_REACTION, 'Put exactly one emoji in "emoji", such as "👍".')


# A seq as a cursor: a plain non-negative integer, also in a query string.
SEQ_PATTERN = re.compile(r"0|[1-9][0-9]{0,17}")


def cursor_field(body: dict[str, Any], field: str, *, ids: bool = True) -> int | str:
    """
    A position in a room's history that the client names (``before``,
    ``after``): a seq (an integer), or with ``ids`` the id of a message, as
    cursors were before seqs; otherwise ``ProtocolError``.
    """
    value = body.get(field)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**18:
        return value
    if ids and valid_message_id(value):
        return value
    wanted = "a message's seq (an integer) or id" if ids else "a message's seq (an integer)"
    raise ProtocolError(INVALID_CURSOR, f'Put {wanted} in "{field}".')


def since_cursor(value: str | None) -> int | str | None:
    """``?since=`` as given on connect: a seq, a message id, or None (anything else is ignored)."""
    if value is None:
        return None
    if SEQ_PATTERN.fullmatch(value):
        return int(value)
    return value if valid_message_id(value) else None


CLIENT_MESSAGE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A browser's identity (?clientId=): random, at least 128 bits as URL-safe base64.
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22,128}")


def client_message_id(body: dict[str, Any]) -> str | None:
    """The optional ``clientMessageId`` of a ``sendMessage``, or ``ProtocolError``."""
    value = body.get("clientMessageId")
    if value is None:
        return None
    if not isinstance(value, str) or not CLIENT_MESSAGE_ID_PATTERN.fullmatch(value):
        raise ProtocolError(INVALID_MESSAGE, 'Put 1 to 64 of A-Z a-z 0-9 _ - in "clientMessageId", or leave it out.')
    return value


def valid_client_id(value: str | None) -> bool:
    return isinstance(value, str) and CLIENT_ID_PATTERN.fullmatch(value) is not None


# --- Building server frames ---------------------------------------------------------


def encode(frame: dict[str, Any]) -> str:
    """Serialise a frame once; broadcasts send the same text to every member."""
    return orjson.dumps(frame).decode()


def decode(text: str | bytes) -> Any:
    return orjson.loads(text)


def member(connection_id: str, name: str) -> dict[str, str]:
    return {"connectionId": connection_id, "name": name}


def latest_within(messages: list[dict[str, Any]], max_bytes: int) -> tuple[list[dict[str, Any]], bool]:
    """
    The latest of ``messages`` (oldest first) whose encoded size adds up to
    at most ``max_bytes``, oldest first; True when older ones were left out.
    """
    total, start = 0, len(messages)
    while start > 0:
        size = len(orjson.dumps(messages[start - 1])) + 1  # and its comma
        if total + size > max_bytes:
            break
        total += size
        start -= 1
    return messages[start:], start > 0


def earliest_within(messages: list[dict[str, Any]], max_bytes: int) -> tuple[list[dict[str, Any]], bool]:
    """The earliest of ``messages`` (oldest first) within ``max_bytes`` encoded; True when later ones were left out."""
    total = 0
    for end, message in enumerate(messages):
        total += len(orjson.dumps(message)) + 1
        if total > max_bytes:
            return messages[:end], True
    return messages, False


def welcome_frame(
    *,
    connection_id: str,
    room: str,
    name: str,
    members: list[dict[str, str]],
    history: list[dict[str, Any]],
    truncated: bool = False,
    sender: str | None = None,
    operator: bool = False,
    upload_token: str | None = None,
) -> dict[str, Any]:
    """
    The first frame of a socket. ``truncated``: ``history`` holds the latest
    messages only (away too long, or more bytes than a welcome carries);
    the ``history`` action pages back from the oldest one.
    """
    return {
        "type": WELCOME,
        "connectionId": connection_id,
        "room": room,
        "name": name,
        "members": members,
        "history": history,
        "truncated": truncated,
        "sender": sender,
        "operator": operator,
        "uploadToken": upload_token,
    }


def history_frame(*, messages: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    """An answer to the ``history`` action: older messages, oldest first."""
    return {"type": HISTORY, "messages": messages, "more": more}


def presence_frame(*, event: str, connection_id: str, name: str, room: str) -> dict[str, Any]:
    return {"type": PRESENCE, "event": event, "connectionId": connection_id, "name": name, "room": room}


def message_frame(
    *,
    message_id: str,
    seq: int,
    room: str,
    connection_id: str,
    name: str,
    text: str,
    sent_at: str,
    client_message_id: str | None = None,
    sender: str | None = None,
    reply_to: dict[str, Any] | None = None,
    reactions: dict[str, int] | None = None,
    version: int = 1,
    edited_at: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """
    A chat message in its current state. ``seq`` orders the room: every
    member gets its messages in increasing seq, with none skipped that
    exists. ``clientMessageId`` (the sender's own, echoed) is there only
    when the sender gave one; ``sender`` is the tag of who sent it
    (``sender_tag``); ``version`` counts its changes, 1 when sent.
    """
    frame = {
        "type": MESSAGE,
        "id": message_id,
        "seq": seq,
        "room": room,
        "connectionId": connection_id,
        "name": name,
        "message": text,
        "sentAt": sent_at,
        "reactions": reactions or {},
        "version": version,
    }
    if client_message_id:
        frame["clientMessageId"] = client_message_id
    if sender:
        frame["sender"] = sender
    if reply_to:
        frame["replyTo"] = reply_to
    if edited_at:
        frame["editedAt"] = edited_at
    if attachments:
        frame["attachments"] = attachments
    return frame


def tombstone(message: dict[str, Any], *, version: int) -> dict[str, Any]:
    """What stays of a deleted message: where it was and whose, with no text, reactions or reply."""
    kept = {key: message[key] for key in ("id", "seq", "room", "connectionId", "name", "sentAt") if key in message}
    if message.get("sender"):
        kept["sender"] = message["sender"]
    return {"type": MESSAGE, **kept, "deleted": True, "version": version}


def reply_quote(message: dict[str, Any]) -> dict[str, Any]:
    """How a reply names the message it answers: its id, its sender's name, and the start of its text now."""
    text = None if message.get("deleted") else message.get("message", "")[:EXCERPT_LENGTH]
    return {"id": message["id"], "name": message.get("name", ""), "excerpt": text}


def sender_tag(identity: str) -> str:
    """
    The tag that names a sender in frames: the same for all of one
    identity's connections, and no way back to the identity (a browser's
    ``clientId`` is a secret).
    """
    from django.conf import settings

    digest = hmac.new(settings.SECRET_KEY.encode(), f"chat.sender\0{identity}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def typing_frame(*, room: str, connection_id: str, name: str, sender: str) -> dict[str, Any]:
    return {"type": TYPING_FRAME, "room": room, "connectionId": connection_id, "name": name, "sender": sender}


def reaction_frame(
    *,
    seq: int,
    room: str,
    message_id: str,
    reactions: dict[str, int],
    version: int,
    emoji: str,
    added: bool,
    sender: str,
) -> dict[str, Any]:
    """The counts of a message's reactions now, and the one change that made them."""
    return {
        "type": REACTION,
        "seq": seq,
        "room": room,
        "messageId": message_id,
        "reactions": reactions,
        "version": version,
        "emoji": emoji,
        "added": added,
        "sender": sender,
    }


def edited_frame(*, seq: int, room: str, message_id: str, text: str, edited_at: str, version: int) -> dict[str, Any]:
    return {
        "type": MESSAGE_EDITED,
        "seq": seq,
        "room": room,
        "messageId": message_id,
        "message": text,
        "editedAt": edited_at,
        "version": version,
    }


def deleted_frame(*, seq: int, room: str, message_id: str, version: int) -> dict[str, Any]:
    return {"type": MESSAGE_DELETED, "seq": seq, "room": room, "messageId": message_id, "version": version}


def is_message(frame: dict[str, Any]) -> bool:
    """True for a message (a tombstone included), False for an event about one."""
    return frame.get("type") == MESSAGE


def system_frame(*, message: str, sent_at: str | None = None) -> dict[str, Any]:
    """A notice from the operators, shown to the person as it is, not as a chat message."""
    return {"type": SYSTEM, "message": message, "sentAt": sent_at or iso_timestamp()}


def error_frame(code: str, message: str) -> dict[str, Any]:
    return {"type": ERROR, "code": code, "message": message}


# Fields of a request that an error answering it echoes, so a client knows which of its requests failed.
ECHOED_FIELDS = ("messageId", "clientMessageId", "replyTo")


def answering(error: dict[str, Any], request: Request | None) -> dict[str, Any]:
    """An ``error`` frame that names the request it answers: its ``action``, and the ids it carried."""
    if request is None:
        return error
    echoed = {"action": request.action}
    for field in ECHOED_FIELDS:
        value = request.body.get(field)
        if isinstance(value, str) and len(value) <= 64:
            echoed[field] = value
    return {**error, **echoed}
