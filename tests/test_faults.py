"""Faults against real processes: Redis restarted, a server process killed."""

import asyncio
import signal
import time

from chat import protocol

from .support.clients import ChatClient
from .support.redis import RedisServer


def is_message(frame) -> bool:
    return frame["type"] == protocol.MESSAGE


async def test_after_redis_restarts_the_server_carries_on_and_clients_recover_what_they_missed(start_server, room):
    """Proves: no daphne restart is needed after Redis comes back, and history fills the gap."""
    redis = RedisServer().start()
    try:
        server = start_server(REDIS_URL=redis.url)
        ann = await ChatClient.join(server.ws_url, room, "Ann")
        bob = await ChatClient.join(server.ws_url, room, "Bob")
        await ann.say("before")
        last_seen = await bob.receive_until(lambda f: is_message(f) and f["message"] == "before")

        redis.kill()
        await ann.say("during")  # stored in history; the live broadcast fails
        error = await ann.receive_until(lambda f: f["type"] == protocol.ERROR)
        assert error["code"] == protocol.SERVER_ERROR
        redis.start()

        delivered = None
        for attempt in range(40):  # bounded: Redis and the subscriptions come back within seconds
            await ann.say(f"after-{attempt}")
            try:
                delivered = await bob.receive_until(lambda f: is_message(f) and f["message"].startswith("after"), 1)
                break
            except TimeoutError:
                continue
        assert delivered is not None, "messages never flowed again after Redis came back"

        await bob.close()
        bob = await ChatClient.join(server.ws_url, room, "Bob", since=last_seen["id"])
        recovered = [f["message"] for f in bob.welcome["history"]]
        assert recovered[0] == "during" and delivered["message"] in recovered
        assert len(recovered) == len(set(recovered))
        await asyncio.gather(ann.close(), bob.close())
    finally:
        redis.stop()


async def test_a_killed_server_is_swept_and_its_clients_recover_on_the_survivor(start_server, room, dynamodb_local):
    """Proves: a SIGKILLed process's registry items and members vanish within two heartbeat intervals."""
    interval = 2
    survivor = start_server(CHAT_HEARTBEAT_INTERVAL=str(interval))
    doomed = start_server(CHAT_HEARTBEAT_INTERVAL=str(interval))
    ann = await ChatClient.join(survivor.ws_url, room, "Ann")
    bob = await ChatClient.join(doomed.ws_url, room, "Bob")
    cy = await ChatClient.join(doomed.ws_url, room, "Cy")
    await ann.say("hello all")
    last_seen = await bob.receive_until(lambda f: is_message(f) and f["message"] == "hello all")
    table = dynamodb_local.client()

    def registered(client: ChatClient) -> bool:
        key = {"connectionId": {"S": client.connection_id}}
        return "Item" in table.get_item(TableName="ChatConnections", Key=key, ConsistentRead=True)

    assert registered(bob) and registered(cy)

    doomed.process.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    left = set()
    while left != {bob.connection_id, cy.connection_id}:
        remaining = 2 * interval - (time.monotonic() - killed_at)
        frame = await ann.receive_until(
            lambda f: f["type"] == protocol.PRESENCE and f["event"] == protocol.LEAVE, max(remaining, 0.01)
        )
        left.add(frame["connectionId"])
    assert not registered(bob) and not registered(cy)

    await ann.say("while you were away")
    await ann.receive_until(lambda f: is_message(f) and f["message"] == "while you were away")
    bob = await ChatClient.join(survivor.ws_url, room, "Bob", since=last_seen["id"])
    assert [f["message"] for f in bob.welcome["history"]] == ["while you were away"]
    assert {m["name"] for m in bob.welcome["members"]} == {"Ann", "Bob"}
    await asyncio.gather(ann.close(), bob.close())


async def test_a_live_server_taken_for_dead_puts_its_connections_back(start_server, room, dynamodb_local):
    """Proves: if a slow process is swept by mistake, its next heartbeat restores its registry items and members."""
    interval = 2
    server = start_server(CHAT_HEARTBEAT_INTERVAL=str(interval))
    ann = await ChatClient.join(server.ws_url, room, "Ann")
    bob = await ChatClient.join(server.ws_url, room, "Bob")
    await ann.receive_until(lambda f: f["type"] == protocol.PRESENCE and f["connectionId"] == bob.connection_id)
    table = dynamodb_local.client()
    key = {"connectionId": {"S": bob.connection_id}}
    item = table.get_item(TableName="ChatConnections", Key=key, ConsistentRead=True)["Item"]
    # What a sweeper does to a process whose heartbeat it found stale.
    table.delete_item(TableName="ChatConnections", Key=key)
    table.delete_item(TableName="ChatInstances", Key={"instanceId": item["instanceId"]})

    joined = await ann.receive_until(
        lambda f: f["type"] == protocol.PRESENCE and f["connectionId"] == bob.connection_id, 3 * interval
    )
    assert joined["event"] == protocol.JOIN
    assert "Item" in table.get_item(TableName="ChatConnections", Key=key, ConsistentRead=True)
    await asyncio.gather(ann.close(), bob.close())
