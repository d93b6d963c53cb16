"""One contract, every connection store: what the registry promises its callers."""

import asyncio
import time
import uuid

import pytest
from django.conf import settings

from chat.exceptions import ConnectionExists, StoreError
from chat.stores import Connection, build_connection_store
from chat.stores.dynamodb import DynamoDBConnectionStore
from chat.stores.memory import MemoryConnectionStore


@pytest.fixture(params=["dynamodb", "memory"])
def store(request, chat_settings):
    if request.param == "memory":
        yield MemoryConnectionStore()
        return
    store = build_connection_store(settings.CHAT_CONNECTION_STORE)
    assert isinstance(store, DynamoDBConnectionStore)
    yield store


def make(room: str, name: str = "Ann", connection_id: str | None = None) -> Connection:
    return Connection(
        connection_id=connection_id or uuid.uuid4().hex,
        channel_name=f"chat.specific.{uuid.uuid4().hex}",
        room=room,
        name=name,
        connected_at=f"2026-11-25T12:00:{time.perf_counter_ns() % 60:02d}.000Z",
        instance_id="host-1-abc",
        source_ip="127.0.0.1",
        user_agent="pytest",
        expires_at=int(time.time()) + 3600,
    )


async def test_an_added_connection_can_be_read_back_whole(store, room):
    connection = make(room)
    await store.add(connection)
    assert await store.get(connection.connection_id) == connection


async def test_a_connection_id_cannot_be_registered_twice(store, room):
    connection = make(room)
    await store.add(connection)
    with pytest.raises(ConnectionExists):
        await store.add(make(room, name="Bob", connection_id=connection.connection_id))
    assert (await store.get(connection.connection_id)).name == "Ann"


async def test_remove_returns_what_was_recorded_and_forgets_it(store, room):
    connection = make(room)
    await store.add(connection)
    assert await store.remove(connection.connection_id) == connection
    assert await store.get(connection.connection_id) is None
    assert await store.remove(connection.connection_id) is None


async def test_members_lists_one_room_only(store, room):
    mine = [make(room, name=f"m{i}") for i in range(3)]
    other = make(room + "-other")
    for connection in [*mine, other]:
        await store.add(connection)
    page = await store.members(room)
    assert {c.connection_id for c in page.items} == {c.connection_id for c in mine}
    assert page.cursor is None


async def test_members_pages_follow_the_cursor_to_the_end(store, room):
    added = {(await _add(store, make(room, name=f"m{i}"))).connection_id for i in range(7)}
    seen, cursor = [], None
    for _ in range(10):
        page = await store.members(room, limit=3, cursor=cursor)
        assert len(page.items) <= 3
        seen += [c.connection_id for c in page.items]
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(added)


async def test_scan_pages_reach_every_connection(store, room):
    added = {(await _add(store, make(room))).connection_id for _ in range(5)}
    seen, cursor = set(), None
    for _ in range(10_000):
        page = await store.scan(limit=4, cursor=cursor)
        seen |= {c.connection_id for c in page.items}
        cursor = page.cursor
        if cursor is None:
            break
    assert added <= seen


async def test_a_forged_cursor_is_refused(store, room):
    with pytest.raises(StoreError):
        await store.members(room, cursor="not-a-cursor")


async def test_a_new_connection_was_last_active_when_it_connected(store, room):
    connection = make(room)
    await store.add(connection)
    assert (await store.get(connection.connection_id)).last_active_at == connection.connected_at


async def test_touch_records_when_a_connection_was_last_active(store, room):
    connection = make(room)
    await store.add(connection)
    assert await store.touch(connection.connection_id, "2026-11-25T13:05:00.000Z") is True
    stored = await store.get(connection.connection_id)
    assert stored.last_active_at == "2026-11-25T13:05:00.000Z"
    assert stored.connected_at == connection.connected_at and stored.name == connection.name
    page = await store.members(room)
    assert [c.last_active_at for c in page.items] == ["2026-11-25T13:05:00.000Z"]


async def test_touch_of_a_connection_that_is_gone_writes_nothing(store, room):
    connection = make(room)
    await store.add(connection)
    await store.remove(connection.connection_id)
    assert await store.touch(connection.connection_id, "2026-11-25T13:05:00.000Z") is False
    assert await store.get(connection.connection_id) is None
    assert await store.touch(uuid.uuid4().hex, "2026-11-25T13:05:00.000Z") is False


async def test_count_tells_how_many_a_room_has_up_to_the_limit(store, room):
    for i in range(5):
        await store.add(make(room, name=f"m{i}"))
    await store.add(make(room + "-other"))
    assert await store.count(room) == 5
    assert await store.count(room, limit=3) == 3
    assert await store.count(room + "-empty") == 0


async def _add(store, connection: Connection) -> Connection:
    await store.add(connection)
    return connection


async def test_a_heartbeat_that_lands_after_a_later_one_changes_nothing(store):
    """A write held up in the network must not make a live process look stale (and get it swept)."""
    instance_id = f"host-{uuid.uuid4().hex[:8]}"
    now = time.time()
    expires = int(now) + 3600
    assert not await store.heartbeat(instance_id, beat=1, at=now, stale_at=now + 3, expires_at=expires)
    assert await store.heartbeat(instance_id, beat=3, at=now + 2, stale_at=now + 5, expires_at=expires)
    assert await store.claim_instance(instance_id, sweeper="other", now=now + 6, lapse_before=now) is True
    assert await store.heartbeat(instance_id, beat=4, at=now + 6, stale_at=now + 9, expires_at=expires) is False

    assert await store.heartbeat(instance_id, beat=2, at=now + 1, stale_at=now + 4, expires_at=expires) is True
    recorded = await store.instance(instance_id)
    assert (recorded.beat, recorded.stale_at, recorded.swept_by) == (4, pytest.approx(now + 9, abs=0.01), "")
    assert await store.claim_instance(instance_id, sweeper="other", now=now + 7, lapse_before=now) is False
    await store.forget_instance(instance_id)


async def test_new_connections_registered_at_once_are_each_recorded_whole(store, room):
    """Registrations made together (a connect storm) may share one write; each is there after its own returns."""
    connections = [make(room, name=f"n{i}") for i in range(60)]
    await asyncio.gather(*(store.register(connection) for connection in connections))
    for connection in connections:
        assert await store.get(connection.connection_id) == connection
    assert await store.count(room) == 60


async def test_connections_removed_at_once_each_get_their_own_back_and_one_removal_alone_finds_it(store, room):
    """Removals made together (a crowd leaving, a sweep) may share one call; each returns what it removed."""
    connections = [make(room, name=f"n{i}") for i in range(60)]
    await asyncio.gather(*(store.register(connection) for connection in connections))
    twice = connections[0].connection_id
    gone = uuid.uuid4().hex
    ids = [c.connection_id for c in connections] + [twice, gone]
    removed = await asyncio.gather(*(store.remove(connection_id) for connection_id in ids))
    assert removed[1:60] == connections[1:]
    # Of two removals of one, one finds it and the other finds it gone; so does the removal of one never there.
    assert sorted([removed[0], removed[60]], key=lambda c: c is None) == [connections[0], None]
    assert removed[61] is None
    assert await store.count(room) == 0
