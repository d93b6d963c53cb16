"""One contract, every message store: seqs given out once, history read by seq, sends claimed once."""

import asyncio
import time

import pytest
from django.conf import settings

from chat import protocol
from chat.exceptions import TooManyReactions, UnknownMessage
from chat.stores import build_message_store
from chat.stores.base import SEND_PENDING
from chat.stores.dynamodb import DynamoDBMessageStore
from chat.stores.memory import MemoryMessageStore


@pytest.fixture(params=["dynamodb", "memory"])
def store(request, chat_settings):
    if request.param == "memory":
        return MemoryMessageStore()
    store = build_message_store(settings.CHAT_MESSAGE_STORE)
    assert isinstance(store, DynamoDBMessageStore)
    return store


async def stored(store, room: str, texts: list[str]) -> list[dict]:
    frames = []
    for text in texts:
        frame = protocol.message_frame(
            message_id=protocol.new_message_id(),
            seq=await store.next_seq(room),
            room=room,
            connection_id="c1",
            name="Ann",
            text=text,
            sent_at=protocol.iso_timestamp(),
        )
        await store.append(frame, expires_at=int(time.time()) + 3600)
        frames.append(frame)
    return frames


async def test_each_room_counts_its_own_seqs_from_one_and_never_twice(store, room):
    concurrent = await asyncio.gather(*(store.next_seq(room) for _ in range(20)))
    assert sorted(concurrent) == list(range(1, 21))
    assert await store.next_seq(room + "-other") == 1
    assert await store.next_seq(room) == 21


async def test_seqs_asked_for_together_in_many_rooms_are_each_rooms_own_and_never_twice(store, room):
    """More rooms than one call takes, three asks each: first for new rooms, then for rooms that have counters."""
    rooms = [f"{room}-{n}" for n in range(40)]
    for start in (1, 4):
        asks = [name for _ in range(3) for name in rooms]
        seqs = await asyncio.gather(*(store.next_seq(name) for name in asks))
        given = {name: sorted(seq for asked, seq in zip(asks, seqs, strict=True) if asked == name) for name in rooms}
        assert given == {name: [start, start + 1, start + 2] for name in rooms}


async def test_history_reads_by_seq_in_both_directions(store, room):
    frames = await stored(store, room, ["a", "b", "c", "d", "e"])
    assert await store.latest(room, limit=2) == frames[3:]
    assert await store.after(room, 2, limit=2) == (frames[2:4], True)
    assert await store.after(room, 3, limit=5) == (frames[3:], False)
    assert await store.before(room, 4, limit=2) == (frames[1:3], True)
    assert await store.before(room, 3, limit=5) == (frames[:2], False)
    assert await store.get(room, 3) == frames[2] and await store.get(room, 99) is None


async def test_a_cursor_given_as_a_message_id_still_finds_its_place(store, room):
    before_any = protocol.new_message_id()
    frames = await stored(store, room, ["a", "b", "c"])
    assert await store.seq_by_id(room, frames[1]["id"], inclusive=True) == 2
    assert await store.seq_by_id(room, frames[1]["id"], inclusive=False) == 1
    assert await store.seq_by_id(room, before_any, inclusive=True) == 0
    assert await store.seq_by_id(room, protocol.new_message_id(), inclusive=False) == 3


async def test_a_send_is_claimed_once_and_then_names_its_seq(store, room):
    key = f"{room}-key"
    expires = int(time.time()) + 600
    assert await store.claim_send(key, expires_at=expires) is None
    assert await store.claim_send(key, expires_at=expires) == SEND_PENDING
    await store.settle_send(key, 7)
    assert await store.claim_send(key, expires_at=expires) == 7


async def test_an_expired_claim_counts_as_none(store, room):
    key = f"{room}-old"
    assert await store.claim_send(key, expires_at=int(time.time()) - 1) is None
    assert await store.claim_send(key, expires_at=int(time.time()) + 600) is None


async def test_a_reaction_toggles_and_counts_each_person_once(store, room):
    (message,) = await stored(store, room, ["hi"])
    seq = message["seq"]
    now, added = await store.react(room, seq, emoji="👍", who="ann", limit=20)
    assert added and now["reactions"] == {"👍": 1} and now["version"] == 2
    now, added = await store.react(room, seq, emoji="👍", who="bob", limit=20)
    assert added and now["reactions"] == {"👍": 2}
    now, added = await store.react(room, seq, emoji="🎉", who="bob", limit=20)
    assert now["reactions"] == {"👍": 2, "🎉": 1}
    now, added = await store.react(room, seq, emoji="👍", who="ann", limit=20)
    assert not added and now["reactions"] == {"👍": 1, "🎉": 1}
    now, added = await store.react(room, seq, emoji="🎉", who="bob", limit=20)
    assert not added and now["reactions"] == {"👍": 1} and now["version"] == 6
    assert (await store.get(room, seq))["reactions"] == {"👍": 1}
    assert (await store.find(room, message["id"]))["reactions"] == {"👍": 1}


async def test_one_person_has_at_most_the_limit_of_distinct_reactions(store, room):
    (message,) = await stored(store, room, ["hi"])
    for emoji in ("👍", "🎉", "😮"):
        await store.react(room, message["seq"], emoji=emoji, who="ann", limit=3)
    with pytest.raises(TooManyReactions):
        await store.react(room, message["seq"], emoji="😢", who="ann", limit=3)
    now, added = await store.react(room, message["seq"], emoji="😢", who="bob", limit=3)
    assert added and now["reactions"]["😢"] == 1
    await store.react(room, message["seq"], emoji="👍", who="ann", limit=3)  # one taken back makes room
    now, added = await store.react(room, message["seq"], emoji="😢", who="ann", limit=3)
    assert added and now["reactions"]["😢"] == 2


async def test_concurrent_reactions_are_each_counted(store, room):
    (message,) = await stored(store, room, ["hi"])
    await asyncio.gather(*(store.react(room, message["seq"], emoji="❤️", who=f"p{i}", limit=20) for i in range(10)))
    assert (await store.get(room, message["seq"]))["reactions"] == {"❤️": 10}


async def test_an_edit_replaces_the_text_and_a_delete_leaves_a_tombstone(store, room):
    first, second = await stored(store, room, ["first", "second"])
    edited = await store.edit(room, first["seq"], text="first, fixed", edited_at="2026-12-01T10:00:00.000Z")
    assert edited["message"] == "first, fixed" and edited["editedAt"] == "2026-12-01T10:00:00.000Z"
    assert edited["version"] == 2
    await store.react(room, second["seq"], emoji="👍", who="ann", limit=20)
    gone = await store.delete(room, second["seq"])
    assert gone["deleted"] is True and gone["id"] == second["id"] and gone["version"] == 3
    assert "message" not in gone and "reactions" not in gone
    assert await store.delete(room, second["seq"]) is None
    with pytest.raises(UnknownMessage):
        await store.edit(room, second["seq"], text="back", edited_at="2026-12-01T10:00:00.000Z")
    with pytest.raises(UnknownMessage):
        await store.react(room, second["seq"], emoji="👍", who="ann", limit=20)
    with pytest.raises(UnknownMessage):
        await store.delete(room, 999)
    assert await store.latest(room, limit=10) == [edited, gone]
    assert await store.find(room, protocol.new_message_id()) is None


async def test_events_are_kept_in_the_order_of_the_room_beside_the_messages(store, room):
    (message,) = await stored(store, room, ["hi"])
    seq = await store.next_seq(room)
    event = protocol.deleted_frame(seq=seq, room=room, message_id=message["id"], version=2)
    await store.append(event, expires_at=int(time.time()) + 3600)
    (later,) = await stored(store, room, ["after"])
    assert await store.after(room, 0, limit=10) == ([message, event, later], False)
    assert await store.seq_by_id(room, later["id"], inclusive=False) == message["seq"]


async def test_a_claimed_send_is_known_as_claimed_until_it_expires(store, room):
    key = f"{room}-claimed"
    assert await store.claimed(key) is False
    assert await store.claim_send(key, expires_at=int(time.time()) + 60) is None
    assert await store.claimed(key) is True
    await store.claim_send(key + "-old", expires_at=int(time.time()) - 1)
    assert await store.claimed(key + "-old") is False
