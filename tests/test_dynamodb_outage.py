"""
DynamoDB stopped: new sockets are refused with a logged reason; live ones
stay open, and their sends are refused in words (a message's seq comes
from DynamoDB, so none is sent out of order); it all comes back.
"""

import asyncio
import json
import subprocess

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat import protocol

from .support.clients import WAIT, ChatClient
from .support.dynamodb_local import DynamoDBLocal
from .support.processes import ROOT
from .support.recorded import python_argv


async def test_new_connections_are_refused_while_live_ones_chat_and_work_again_after(
    start_server, server_env, room, tmp_path
):
    dynamodb = DynamoDBLocal(db_path=str(tmp_path)).start()
    try:
        env = {**server_env, "DYNAMODB_ENDPOINT_URL": dynamodb.endpoint}
        ensure = python_argv("manage.py", "ensure_tables")
        subprocess.run(ensure, cwd=ROOT, env=env, check=True, timeout=120, capture_output=True)
        server = start_server(DYNAMODB_ENDPOINT_URL=dynamodb.endpoint)
        ann = await ChatClient.join(server.ws_url, room, "Ann")
        dynamodb.stop()

        async with connect(f"{server.ws_url}/ws/chat/{room}/?name=Bob", open_timeout=WAIT) as bob:
            notice = json.loads(await asyncio.wait_for(bob.recv(), WAIT))
            assert notice["type"] == protocol.ERROR and notice["code"] == protocol.SERVER_UNAVAILABLE
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(bob.recv(), WAIT)
            assert closed.value.rcvd.code == protocol.CLOSE_SERVER_ERROR

        lines = [line for line in server.output().splitlines() if "connection refused" in line]
        assert len(lines) == 1 and dynamodb.endpoint in lines[0], server.output()[-3000:]
        # A connect announces itself while its registry write is on its way: Ann may hear Bob join,
        # and then hears him leave. No join without its leave.
        presence = []
        try:
            await ann.receive_until(
                lambda f: (
                    f["type"] == protocol.PRESENCE
                    and f["name"] == "Bob"
                    and (presence.append(f["event"]) or f["event"] == protocol.LEAVE)
                )
            )
        except TimeoutError:
            pass  # no join reached Ann, so no leave is owed
        assert presence.count(protocol.JOIN) == presence.count(protocol.LEAVE), presence

        await ann.say("while it is down")
        refused = await ann.receive_until(lambda f: f["type"] in (protocol.MESSAGE, protocol.ERROR))
        assert (refused["type"], refused["code"]) == (protocol.ERROR, protocol.SERVER_UNAVAILABLE)
        assert "not sent" in refused["message"]
        status, _ = server.get("/")
        assert status == 200

        dynamodb.start()  # the same port, the same tables; daphne is not restarted
        await ann.say("still chatting")
        frame = await ann.receive_until(lambda f: f["type"] == protocol.MESSAGE)
        assert frame["message"] == "still chatting" and frame["seq"] == 1
        bob = await ChatClient.join(server.ws_url, room, "Bob")
        assert {m["name"] for m in bob.welcome["members"]} == {"Ann", "Bob"}
        await asyncio.gather(ann.close(), bob.close())
    finally:
        dynamodb.stop()
