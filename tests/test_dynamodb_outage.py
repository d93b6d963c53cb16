"""DynamoDB unreachable at connect: the socket is refused cleanly and the server keeps serving."""

import asyncio
import subprocess

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat import protocol

from .support.clients import WAIT, ChatClient
from .support.dynamodb_local import DynamoDBLocal
from .support.processes import ROOT
from .support.recorded import python_argv


async def test_new_connections_are_closed_with_1011_while_live_ones_keep_chatting(start_server, server_env, room):
    dynamodb = DynamoDBLocal().start()
    try:
        env = {**server_env, "DYNAMODB_ENDPOINT_URL": dynamodb.endpoint}
        subprocess.run(
            python_argv("manage.py", "ensure_tables"),
            cwd=ROOT,
            env=env,
            check=True,
            timeout=120,
            capture_output=True,
        )
        server = start_server(DYNAMODB_ENDPOINT_URL=dynamodb.endpoint)
        ann = await ChatClient.join(server.ws_url, room, "Ann")
    finally:
        dynamodb.stop()

    async with connect(f"{server.ws_url}/ws/chat/{room}/?name=Bob", open_timeout=WAIT) as bob:
        try:
            frame = await asyncio.wait_for(bob.recv(), WAIT)
        except ConnectionClosed as closed:
            assert closed.rcvd.code == protocol.CLOSE_SERVER_ERROR
        else:
            raise AssertionError(f"expected the socket to close with 1011, got {frame}")

    lines = [line for line in server.output().splitlines() if "connection refused" in line]
    assert len(lines) == 1 and dynamodb.endpoint in lines[0], server.output()[-3000:]

    await ann.say("still chatting")
    frame = await ann.receive_until(lambda f: f["type"] == protocol.MESSAGE)
    assert frame["message"] == "still chatting"
    status, _ = server.get("/")
    assert status == 200
    await ann.close()
