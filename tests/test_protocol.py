import pytest

from chat import protocol
from chat.exceptions import ProtocolError


@pytest.mark.parametrize(
    ("text", "data", "code"),
    [
        ("not json", None, protocol.BAD_JSON),
        ("[1, 2]", None, protocol.BAD_FRAME),
        ('"hi"', None, protocol.BAD_FRAME),
        (None, b"\x00\x01", protocol.BAD_FRAME),
        ("{}", None, protocol.UNKNOWN_ACTION),
        ('{"action": "dance"}', None, protocol.UNKNOWN_ACTION),
        ('{"action": 5}', None, protocol.UNKNOWN_ACTION),
        ('{"action": "__init__"}', None, protocol.UNKNOWN_ACTION),
    ],
)
def test_frames_outside_every_route_get_the_default_answer(text, data, code):
    with pytest.raises(ProtocolError) as caught:
        protocol.parse_request(text, data)
    assert caught.value.code == code
    assert caught.value.message.endswith(".")


def test_aws_samples_action_and_field_are_aliases():
    request = protocol.parse_request('{"action": "sendmessage", "data": "  hi  "}')
    assert request.action == protocol.SEND_MESSAGE
    assert protocol.message_text(request.body, max_length=10) == "hi"


@pytest.mark.parametrize("body", [{}, {"message": ""}, {"message": "   "}, {"message": 3}, {"message": None}])
def test_a_message_must_be_non_empty_text(body):
    with pytest.raises(ProtocolError) as caught:
        protocol.message_text(body, max_length=10)
    assert caught.value.code == protocol.INVALID_MESSAGE


def test_a_message_over_the_limit_says_the_limit():
    with pytest.raises(ProtocolError) as caught:
        protocol.message_text({"message": "x" * 11}, max_length=10)
    assert caught.value.code == protocol.MESSAGE_TOO_LONG
    assert "10" in caught.value.message


@pytest.mark.parametrize("room", ["lobby", "a", "A-b_9", "x" * 64])
def test_valid_rooms(room):
    assert protocol.valid_room(room)


@pytest.mark.parametrize("room", ["", "x" * 65, "a b", "ä", "a.b", "a/b"])
def test_invalid_rooms(room):
    assert not protocol.valid_room(room)


def test_message_ids_are_unique_and_sort_in_the_order_they_were_made():
    ids = [protocol.new_message_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 26 for i in ids)


def test_timestamps_are_utc_with_milliseconds():
    stamp = protocol.iso_timestamp()
    assert stamp.endswith("Z") and len(stamp) == len("2026-11-25T12:00:00.000Z")
