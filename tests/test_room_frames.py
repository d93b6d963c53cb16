"""
Room frames as each member's socket gets them: framed once and written
straight to the socket (``chat.daphne_sockets.Wire``), in each of the three
length forms of a WebSocket frame. (tests/test_slow_consumers.py has them
behind what a socket's buffer already holds.)
"""

from chat import protocol

from .support.clients import ChatClient

# Frames of up to 300 KB, so the longest message is sent in the 64-bit length form.
BIG = {"CHAT_MAX_MESSAGE_LENGTH": "50000", "CHAT_MAX_FRAME_BYTES": "300000", "CHAT_MAX_OUTBOUND_BYTES": "1000000"}


async def test_every_length_of_room_frame_arrives_whole(start_server, room):
    """Proves: a short typing frame, messages of 7-bit, 16-bit and 64-bit lengths (two-byte characters), intact."""
    server = start_server(**BIG)
    reader = await ChatClient.join(server.ws_url, room, "Reader", max_size=None)
    sender = await ChatClient.join(server.ws_url, room, "Sender", max_size=None)
    await reader.receive_until(lambda f: f["type"] == protocol.PRESENCE)

    await sender.send({"action": protocol.TYPING})
    typing = await reader.receive_until(lambda f: f["type"] == protocol.TYPING_FRAME)
    assert typing["name"] == "Sender" and len(protocol.encode(typing).encode()) < 126

    # A two-byte character each: a length counted in characters rather than bytes breaks the stream.
    texts = ["é" * n for n in (1, 200, 30_000, 45_000)]
    for text in texts:
        await sender.say(text)
    got = [await reader.receive_until(lambda f: f["type"] == protocol.MESSAGE) for _ in texts]
    assert [m["message"] for m in got] == texts
    sizes = [len(protocol.encode(m).encode()) for m in got]
    assert 126 <= sizes[1] < 65536 <= sizes[3], sizes
    # The sender's own copies came through the same path, whole and in order.
    echoed = [await sender.receive_until(lambda f: f["type"] == protocol.MESSAGE) for _ in texts]
    assert [m["seq"] for m in echoed] == [m["seq"] for m in got]
    await reader.close()
    await sender.close()
