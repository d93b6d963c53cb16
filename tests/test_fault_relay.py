"""
The room relay survives what one socket does to it, and /healthz tells the
truth about it: a socket mid-close (the server sent its close frame, the
client never answers) is sent frames and closes by operators, and the
process goes on delivering to everyone else.
"""

import asyncio
import uuid

import requests

from chat import protocol

from .support.experiments import RawSocket, Recorder

TOKEN = f"token-{uuid.uuid4().hex}"


async def watch_healthz(server, seen: list[int], stop: asyncio.Event) -> None:
    """Record /healthz's status about ten times a second until ``stop`` (bounded by the test's own waits)."""
    while not stop.is_set():
        status, _ = await asyncio.to_thread(server.get, "/healthz")
        seen.append(status)
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except TimeoutError:
            pass


async def test_frames_and_closes_for_a_socket_mid_close_do_not_stop_delivery_to_others(start_server, room):
    server = start_server(CHAT_MANAGEMENT_TOKEN=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    other_room = f"{room}-other"
    # Workload: two people chatting in one room; in another, a raw client that never answers a close.
    ann = await Recorder.join(server.ws_url, other_room, "Ann")
    bob = await Recorder.join(server.ws_url, other_room, "Bob")
    zed = await asyncio.to_thread(RawSocket, server.port, RawSocket.chat_path(room, name="Zed"))
    welcome = await asyncio.to_thread(zed.read_json)
    assert welcome["type"] == protocol.WELCOME
    statuses: list[int] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_healthz(server, statuses, stop))
    try:
        await ann.client.say("before")
        await bob.wait_for(lambda r: "before" in r.messages(), what="'before'")

        # Fault: an operator closes Zed, then sends to Zed (and closes again) while the close is unanswered.
        url = f"{server.url}/@connections/{welcome['connectionId']}"
        deleted = await asyncio.to_thread(requests.delete, url, headers=auth, timeout=10)
        assert deleted.status_code == 204
        for index in range(5):
            posted = await asyncio.to_thread(requests.post, url, data=f"late notice {index}", headers=auth, timeout=10)
            assert posted.status_code in (200, 410)
        await asyncio.to_thread(requests.delete, url, headers=auth, timeout=10)

        # Checker: delivery to everyone else goes on, and liveness never went red.
        for index in range(3):
            await ann.client.say(f"after {index}")
        await bob.wait_for(lambda r: "after 2" in r.messages(), what="messages sent after the fault")
        assert bob.messages() == ["before", "after 0", "after 1", "after 2"]
    finally:
        stop.set()
        await watcher
        zed.close()
    assert statuses and set(statuses) == {200}, statuses
    assert "room event not delivered" not in server.output()
    await asyncio.gather(ann.close(), bob.close())
