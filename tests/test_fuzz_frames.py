"""
Thousands of arbitrary frames against a live server: random bytes, deep or
huge JSON, wrong types and unicode edge cases. Each frame gets exactly one
answer, an error frame with the right code or, when it was a valid request,
the delivered message or history page; the server never crashes; nobody else
sees anything but their own room's traffic.

Validity is decided here by an oracle written from the documented protocol,
not by the server's parser: a text frame of at most ``CHAT_MAX_FRAME_BYTES``
bytes holding a JSON object (as orjson reads it) whose ``action`` is a known
route, with a non-empty ``message`` (or ``data``) of at most
``CHAT_MAX_MESSAGE_LENGTH`` characters, or a 26-character ``before`` id.
"""

import json
import re
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from chat import protocol

MAX_FRAME_BYTES = 32 * 1024
MAX_MESSAGE_LENGTH = 4000
WAIT = 10.0  # seconds any single expected frame may take
# The documented id alphabet (Crockford base 32: no I, L, O, U), written out independently.
MESSAGE_ID = re.compile(r"[0123456789ABCDEFGHJKMNPQRSTVWXYZ]{26}")

# Rate limiting answers excess frames with rate_limited: generous limits keep it
# out of the way, so every answer depends on the frame alone.
SERVER_ENV = {
    "CHAT_RATE_LIMIT_PER_SECOND": "1000000",
    "CHAT_RATE_LIMIT_BURST": "1000000",
    "CHAT_FLOOD_LIMIT": "1000000",
    "CHAT_IDLE_TIMEOUT": "3600",
    "CHAT_MAX_FRAME_BYTES": str(MAX_FRAME_BYTES),
    "CHAT_MAX_MESSAGE_LENGTH": str(MAX_MESSAGE_LENGTH),
}


# --- The oracle --------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What the server must answer: an error code, the delivered text, or a history page."""

    kind: str  # protocol.ERROR, protocol.MESSAGE or protocol.HISTORY
    code: str | None = None
    text: str | None = None
    before: str | None = None


def expected_answer(frame: str | bytes) -> Expected:
    """The answer the documented protocol promises for ``frame``."""
    if isinstance(frame, bytes):
        if len(frame) > MAX_FRAME_BYTES:
            return Expected(protocol.ERROR, code=protocol.FRAME_TOO_LARGE)
        return Expected(protocol.ERROR, code=protocol.BAD_FRAME)
    if len(frame.encode("utf-8")) > MAX_FRAME_BYTES:
        return Expected(protocol.ERROR, code=protocol.FRAME_TOO_LARGE)
    try:
        body = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return Expected(protocol.ERROR, code=protocol.BAD_JSON)
    if not isinstance(body, dict):
        return Expected(protocol.ERROR, code=protocol.BAD_FRAME)
    action = body.get("action")
    if action in ("sendMessage", "sendmessage") and isinstance(action, str):
        raw = body["message"] if "message" in body else body.get("data")
        if not isinstance(raw, str) or not raw.strip():
            return Expected(protocol.ERROR, code=protocol.INVALID_MESSAGE)
        if len(raw.strip()) > MAX_MESSAGE_LENGTH:
            return Expected(protocol.ERROR, code=protocol.MESSAGE_TOO_LONG)
        return Expected(protocol.MESSAGE, text=raw.strip())
    if action == "history" and isinstance(action, str):
        before = body.get("before")
        if not isinstance(before, str) or not MESSAGE_ID.fullmatch(before):
            return Expected(protocol.ERROR, code=protocol.INVALID_CURSOR)
        return Expected(protocol.HISTORY, before=before)
    return Expected(protocol.ERROR, code=protocol.UNKNOWN_ACTION)


# --- Frames ------------------------------------------------------------------

# Characters that break naive handling: emoji (with joiners and modifiers),
# right-to-left text and overrides, zero-width characters, NUL and other
# controls, combining marks, a BOM, noncharacters, the last code point.
EDGE_TEXTS = [
    "👩‍👩‍👧‍👦",
    "👍🏽",
    "🏳️‍🌈",
    "שלום עולם",
    "مرحبا",
    "\u202eevil\u202c",
    "a\u200bb\u200c\u200d\u2060",
    "\ufeff",
    "\x00",
    "nul\x00inside",
    "\x01\x1f\x7f",
    "e\u0301\u0301\u0301",
    "Z̴̡̢͎̈́͌a̸̛l̷g̶o̵",
    "\U0010ffff",
    "\ufffe\uffff",
    "\u2028\u2029",
    " \t\n\r\x0b\x0c",
    "\u3000\u00a0\u1680",
    "</script><script>alert(1)</script>",
    '"\\',
    "${jndi:ldap://x}",
    "%s%n%x",
]

utf8_text = st.text(alphabet=st.characters(codec="utf-8"))
edge_text = st.one_of(
    st.sampled_from(EDGE_TEXTS),
    st.lists(st.one_of(st.sampled_from(EDGE_TEXTS), utf8_text), max_size=6).map("".join),
)
# Around the message length limit, measured in characters (some of four bytes each).
long_text = st.builds(
    lambda char, length, pad: pad + char * length + pad,
    st.sampled_from(["x", "é", "€", "😀", "\u0301"]),
    st.integers(MAX_MESSAGE_LENGTH - 3, MAX_MESSAGE_LENGTH + 3),
    st.sampled_from(["", " ", "\n\t", "\u3000"]),
)
any_text = st.one_of(utf8_text, edge_text, long_text)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    utf8_text,
    edge_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(utf8_text, children, max_size=5),
    ),
    max_leaves=20,
)

ACTIONS = [
    "sendMessage",
    "sendmessage",
    "history",
    "SendMessage",
    "SENDMESSAGE",
    "sendMessage ",
    " history",
    "History",
    "",
    "$default",
    "$connect",
    "$disconnect",
    "route_send_message",
    "__init__",
    "send_frame",
    "close",
]
# Mostly real routes, so that the fields behind them get exercised too.
action_values = st.one_of(st.sampled_from(ACTIONS[:3]), st.sampled_from(ACTIONS), json_values)

crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
valid_ids = st.text(alphabet=crockford, min_size=26, max_size=26)
near_ids = st.one_of(
    st.text(alphabet=crockford, min_size=25, max_size=25),
    st.text(alphabet=crockford, min_size=27, max_size=27),
    st.text(alphabet=crockford.lower(), min_size=26, max_size=26),
    st.builds(lambda a, b: a + b, st.text(alphabet=crockford, min_size=25, max_size=25), st.sampled_from("ILOU-é")),
    valid_ids.map(lambda id_: id_ + "\n"),
)
cursor_values = st.one_of(valid_ids, near_ids, json_values)
message_values = st.one_of(any_text, any_text.map(lambda text: f"  {text}\n"), json_values)


def request_objects() -> st.SearchStrategy[dict[str, Any]]:
    """Objects shaped like requests: real and false actions, fields of right and wrong types."""
    return st.builds(
        lambda base, extra: {**extra, **base},
        st.fixed_dictionaries(
            {"action": action_values},
            optional={"message": message_values, "data": message_values, "before": cursor_values},
        ),
        st.dictionaries(utf8_text, json_values, max_size=3),
    )


def dumps(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


encoded_json = st.builds(dumps, json_values, st.booleans())
encoded_requests = st.builds(dumps, request_objects(), st.booleans())


def _sized_request(target: int, char: str, action: str) -> str:
    """A sendMessage request padded with ``char`` so that it encodes to about ``target`` bytes."""
    head = json.dumps({"action": action, "message": "hi", "pad": ""}, ensure_ascii=False)
    room = max(0, target - len(head.encode()))
    return head[:-2] + char * (room // len(char.encode())) + '"}'


huge_json = st.one_of(
    # Right at the frame limit, one side or the other, in one-, two- and four-byte characters.
    st.builds(
        _sized_request,
        st.integers(MAX_FRAME_BYTES - 8, MAX_FRAME_BYTES + 8),
        st.sampled_from(["x", "é", "😀"]),
        st.sampled_from(["sendMessage", "history", "nope"]),
    ),
    # Far over it, up to a megabyte.
    st.builds(_sized_request, st.sampled_from([65_536, 300_000, 1_000_000]), st.just("x"), st.just("sendMessage")),
    # Many small values rather than one long one.
    st.integers(3_000, 6_000).map(lambda n: json.dumps({"action": "sendMessage", "message": "m", "list": [0] * n})),
)
deep_json = st.builds(
    lambda depth, opener, closed: opener * depth + ("1" + _closers(opener) * depth if closed else ""),
    st.integers(100, 6_000),
    st.sampled_from(["[", '{"a":', '{"action":"sendMessage","message":']),
    st.booleans(),
)


def _closers(opener: str) -> str:
    return "]" if opener == "[" else "}"


def _mangle(text: str, position: int, insert: str, cut: bool) -> str:
    position %= len(text) + 1
    return text[:position] + ("" if cut else insert + text[position:])


# Valid requests, cut short or with a stray character: almost JSON.
mangled_json = st.builds(
    _mangle,
    encoded_requests,
    st.integers(0, 10_000),
    st.sampled_from(["", "\x00", ",", "}", "\\", '"', "\ufeff", "NaN"]),
    st.booleans(),
)
valid_requests = st.one_of(
    st.builds(
        lambda action, field_, text: json.dumps({"action": action, field_: text}, ensure_ascii=False),
        st.sampled_from(["sendMessage", "sendmessage"]),
        st.sampled_from(["message", "data"]),
        st.one_of(edge_text, long_text),
    ),
    st.builds(lambda id_: json.dumps({"action": "history", "before": id_}), valid_ids),
)
binary_frames = st.one_of(
    st.binary(max_size=256),
    st.builds(lambda frame: frame.encode(), st.one_of(valid_requests, encoded_requests)),
    st.integers(MAX_FRAME_BYTES - 2, MAX_FRAME_BYTES + 2).map(lambda n: b"\xff" * n),
)

frames = st.one_of(
    binary_frames,
    utf8_text,
    edge_text,
    encoded_json,
    encoded_requests,
    valid_requests,
    mangled_json,
    deep_json,
    huge_json,
)


# --- Clients -----------------------------------------------------------------


def open_socket(stack: ExitStack, server, room: str, name: str) -> tuple[ClientConnection, dict[str, Any]]:
    """A socket in ``room`` (closed with ``stack``) and its welcome frame; answers may be up to 16 MiB."""
    ws = stack.enter_context(connect(f"{server.ws_url}/ws/chat/{room}/?name={name}", open_timeout=WAIT, max_size=2**24))
    welcome = json.loads(ws.recv(timeout=WAIT))
    assert welcome["type"] == protocol.WELCOME, welcome
    return ws, welcome


def settle(ws: ClientConnection, connection_id: str, others: list[ClientConnection]) -> None:
    """
    After a join: say something and wait for it to come back, so that no
    presence frame published before the join (welcome and presence can race)
    is left to arrive later.
    The others in the room see the join, then that message.
    """
    text = f"ready {uuid.uuid4().hex}"
    ws.send(json.dumps({"action": "sendMessage", "message": text}))
    for _ in range(10):
        frame = json.loads(ws.recv(timeout=WAIT))
        if frame["type"] == protocol.MESSAGE:
            break
        assert frame["type"] == protocol.PRESENCE, frame
    else:
        raise AssertionError("the message did not come back among 10 frames")
    assert (frame["message"], frame["connectionId"]) == (text, connection_id), frame
    for other in others:
        joined = json.loads(other.recv(timeout=WAIT))
        assert (joined["type"], joined["event"], joined["connectionId"]) == (
            protocol.PRESENCE,
            protocol.JOIN,
            connection_id,
        ), joined
        assert json.loads(other.recv(timeout=WAIT)) == frame


@dataclass
class Room:
    """A room with a fuzzing client and a bystander who only listens."""

    server: Any
    name: str = field(default_factory=lambda: f"fuzz-{uuid.uuid4().hex[:12]}")
    dirty: bool = False
    sockets: ExitStack = field(default_factory=ExitStack)

    def __post_init__(self) -> None:
        self.bystander, _ = open_socket(self.sockets, self.server, self.name, "Bystander")
        self.fuzzer, welcome = open_socket(self.sockets, self.server, self.name, "Fuzzer")
        self.fuzzer_id = welcome["connectionId"]
        settle(self.fuzzer, self.fuzzer_id, [self.bystander])

    def close(self) -> None:
        self.sockets.close()

    def check_answer(self, frame: str | bytes, expected: Expected, answer: dict[str, Any]) -> None:
        shown = repr(frame[:200])
        if expected.kind == protocol.ERROR:
            assert answer["type"] == protocol.ERROR, (shown, answer)
            assert answer["code"] == expected.code, (shown, expected, answer)
            assert isinstance(answer["message"], str) and answer["message"].strip(), answer
        elif expected.kind == protocol.MESSAGE:
            assert answer["type"] == protocol.MESSAGE, (shown, answer)
            assert answer["message"] == expected.text, (shown, answer)
            assert (answer["connectionId"], answer["room"]) == (self.fuzzer_id, self.name), answer
            assert MESSAGE_ID.fullmatch(answer["id"]), answer
        else:
            assert answer["type"] == protocol.HISTORY, (shown, answer)
            assert isinstance(answer["more"], bool), answer
            for message in answer["messages"]:
                # Only the fuzzer speaks in this room, and the page lies before the cursor.
                assert (message["room"], message["connectionId"]) == (self.name, self.fuzzer_id), message
                assert message["id"] < expected.before, (expected.before, message)

    def play(self, batch: list[str | bytes]) -> int:
        """Send each frame, check its one answer; then the bystander must have seen exactly the messages."""
        delivered = []
        for frame in batch:
            expected = expected_answer(frame)
            self.fuzzer.send(frame)
            answer = json.loads(self.fuzzer.recv(timeout=WAIT))
            self.check_answer(frame, expected, answer)
            if expected.kind == protocol.MESSAGE:
                delivered.append(answer)
        for message in delivered:
            seen = json.loads(self.bystander.recv(timeout=WAIT))
            assert seen == message, (seen, message)
        return len(batch)


def test_arbitrary_frames_get_one_right_answer_each_and_disturb_nobody(start_server):
    """
    Each generated batch goes out frame by frame, each answer read before the
    next frame; the bystander in the same room then sees exactly the batch's
    delivered messages, and an observer in another room sees nothing at all.
    """
    server = start_server(**SERVER_ENV)
    sockets = ExitStack()
    observer, _ = open_socket(sockets, server, f"calm-{uuid.uuid4().hex[:12]}", "Observer")
    state = {"room": Room(server), "frames": 0}

    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(batch=st.lists(frames, min_size=4, max_size=24))
    def fuzz(batch: list[str | bytes]) -> None:
        if state["room"].dirty:
            # A failed example leaves answers unread: carry on in a fresh room.
            state["room"].close()
            state["room"] = Room(server)
        room = state["room"]
        room.dirty = True
        state["frames"] += room.play(batch)
        room.dirty = False

    fuzz()

    assert state["frames"] >= 2000, state["frames"]
    room = state["room"]
    # The bystander's next frame is this one: nothing else arrived before it.
    room.fuzzer.send(json.dumps({"action": "sendMessage", "message": "the end"}))
    assert json.loads(room.fuzzer.recv(timeout=WAIT))["message"] == "the end"
    last = json.loads(room.bystander.recv(timeout=WAIT))
    assert (last["type"], last["message"], last["connectionId"]) == (protocol.MESSAGE, "the end", room.fuzzer_id)
    # The observer, in another room all along, receives its own message first: it was sent nothing.
    observer.send(json.dumps({"action": "sendMessage", "message": "still here"}))
    mine = json.loads(observer.recv(timeout=WAIT))
    assert (mine["type"], mine["message"]) == (protocol.MESSAGE, "still here"), mine
    room.close()
    sockets.close()
    assert server.process.alive()
    log = server.output()
    assert "Traceback" not in log and " ERROR " not in log, log[-5000:]


def test_a_frame_the_websocket_layer_refuses_ends_only_that_connection(start_server):
    """
    Text that is not UTF-8, or a frame over daphne's 1 MiB cap, never reaches
    the chat: the WebSocket layer drops that connection. The room is told it
    left, and the server goes on serving everyone else.
    """
    server = start_server(**SERVER_ENV)
    name = f"fuzz-{uuid.uuid4().hex[:12]}"
    with ExitStack() as sockets:
        bystander, _ = open_socket(sockets, server, name, "Bystander")
        for payload, as_text in ((b"\xff\xfe{", True), (b"\xed\xa0\x80", True), (b"x" * (2**20 + 1), False)):
            sender, welcome = open_socket(sockets, server, name, "Sender")
            settle(sender, welcome["connectionId"], [bystander])
            sender.send(payload, text=as_text)
            with pytest.raises(ConnectionClosed):
                sender.recv(timeout=WAIT)
            left = json.loads(bystander.recv(timeout=WAIT))
            assert (left["event"], left["connectionId"]) == (protocol.LEAVE, welcome["connectionId"]), left
        bystander.send(json.dumps({"action": "sendMessage", "message": "still here"}))
        assert json.loads(bystander.recv(timeout=WAIT))["message"] == "still here"
    assert server.process.alive()
    assert "Traceback" not in server.output(), server.output()[-5000:]
