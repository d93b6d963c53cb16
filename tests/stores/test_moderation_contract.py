"""One contract, every moderation store: rules, mutes and bans by person key, and slow-mode turns."""

import time

import pytest
from django.conf import settings

from chat.stores import build_moderation_store
from chat.stores.dynamodb import DynamoDBModerationStore
from chat.stores.memory import MemoryModerationStore


@pytest.fixture(params=["dynamodb", "memory"])
def store(request, chat_settings):
    if request.param == "memory":
        return MemoryModerationStore()
    store = build_moderation_store(settings.CHAT_MODERATION_STORE)
    assert isinstance(store, DynamoDBModerationStore)
    return store


async def test_a_room_has_no_rules_until_an_operator_sets_them(store, room):
    rules = await store.rules(room)
    assert (rules.slow_mode, rules.locked, rules.mutes) == (0, False, {})
    assert (await store.set_rules(room, slow_mode=30)).slow_mode == 30
    rules = await store.set_rules(room, locked=True)
    assert (rules.slow_mode, rules.locked) == (30, True)
    assert (await store.rules(room)).locked is True
    assert (await store.rules(room + "-other")).slow_mode == 0


async def test_a_mute_covers_every_key_given_and_lifts_by_its_name(store, room):
    until = time.time() + 60
    await store.mute(room, ["name:ann", "tag:t1"], name="Ann", until=until)
    await store.mute(room, ["name:bob"], name="Bob", until=until)
    rules = await store.rules(room)
    assert rules.muted_until(["name:annie", "tag:t1"], time.time()) == pytest.approx(until, abs=0.01)
    assert rules.muted_until(["name:carol"], time.time()) is None
    assert rules.muted_until(["name:ann"], until + 1) is None  # over
    assert await store.unmute(room, "Ann") is True
    assert await store.unmute(room, "Ann") is False
    assert set((await store.rules(room)).mutes) == {"name:bob"}


async def test_bans_hold_across_rooms_until_lifted(store, room):
    name = f"ban-{room}"
    await store.ban([f"name:{name}", f"tag:{room}"], name=name, until=time.time() + 60)
    bans = await store.bans()
    assert bans[f"tag:{room}"].name == name
    assert await store.unban(name) is True
    assert f"tag:{room}" not in await store.bans()


async def test_slow_mode_gives_one_turn_per_person_per_period(store, room):
    now = time.time()
    assert await store.take_turn(room, "ann", seconds=30, now=now) is None
    assert await store.take_turn(room, "ann", seconds=30, now=now + 10) == pytest.approx(now + 30, abs=0.01)
    assert await store.take_turn(room, "bob", seconds=30, now=now + 10) is None
    assert await store.take_turn(room, "ann", seconds=30, now=now + 31) is None


async def test_ended_mutes_make_way_when_the_next_is_made(store, room):
    await store.mute(room, ["name:old"], name="old", until=time.time() - 1)
    await store.mute(room, ["name:new"], name="new", until=time.time() + 60)
    assert set((await store.rules(room)).mutes) == {"name:new"}
