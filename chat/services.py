"""
What users do: connect, send, leave. The consumer, the admin, management
commands and the ``@connections`` API all come through here; none of them
reaches around these functions into the store or the channel layer.
"""

import logging
import time

from channels.layers import get_channel_layer
from django.conf import settings

from . import protocol
from .relay import Member, get_room_relay, room_event, room_group
from .stores import Connection, get_connection_store

logger = logging.getLogger(__name__)

# How many members one welcome frame lists at most.
WELCOME_MEMBERS_LIMIT = 1000


def connection_new(
    *, connection_id: str, channel_name: str, room: str, name: str, source_ip: str, user_agent: str
) -> Connection:
    """A connection record as ``$connect`` registers it."""
    return Connection(
        connection_id=connection_id,
        channel_name=channel_name,
        room=room,
        name=name,
        connected_at=protocol.iso_timestamp(),
        instance_id=settings.CHAT_INSTANCE_ID,
        source_ip=source_ip,
        user_agent=user_agent,
        expires_at=int(time.time()) + settings.CHAT_CONNECTION_TTL,
    )


async def connection_register(*, connection: Connection, member: Member) -> list[dict[str, str]]:
    """
    ``$connect``: record the connection, subscribe its socket to the room and
    tell the room. Returns the room's members for the welcome frame. On any
    failure nothing stays registered and the error propagates.
    """
    store = get_connection_store()
    await store.add(connection)
    relay = get_room_relay()
    try:
        await relay.join(connection.room, member)
        page = await store.members(connection.room, limit=WELCOME_MEMBERS_LIMIT)
    except BaseException:
        await relay.leave(connection.room, connection.connection_id)
        await store.remove(connection.connection_id)
        raise
    members = [protocol.member(c.connection_id, c.name) for c in page.items]
    if not any(m["connectionId"] == connection.connection_id for m in members):
        # The room index is eventually consistent on AWS: our own item may lag.
        members.append(protocol.member(connection.connection_id, connection.name))
    await room_send(
        room=connection.room,
        frame=protocol.presence_frame(
            event=protocol.JOIN, connection_id=connection.connection_id, name=connection.name, room=connection.room
        ),
        exclude=connection.connection_id,
    )
    logger.info("connection registered", extra={"connection_id": connection.connection_id, "room": connection.room})
    return members


async def connection_disconnect(*, connection: Connection) -> None:
    """``$disconnect``: unsubscribe the socket, forget the connection, tell the room."""
    try:
        await get_room_relay().leave(connection.room, connection.connection_id)
    finally:
        await get_connection_store().remove(connection.connection_id)
    await room_send(
        room=connection.room,
        frame=protocol.presence_frame(
            event=protocol.LEAVE, connection_id=connection.connection_id, name=connection.name, room=connection.room
        ),
    )
    logger.info("connection removed", extra={"connection_id": connection.connection_id, "room": connection.room})


async def message_broadcast(*, sender: Connection, text: str) -> dict:
    """``sendMessage``: one message frame to everyone in the sender's room, the sender included."""
    frame = protocol.message_frame(
        message_id=protocol.new_message_id(),
        room=sender.room,
        connection_id=sender.connection_id,
        name=sender.name,
        text=text,
        sent_at=protocol.iso_timestamp(),
    )
    await room_send(room=sender.room, frame=frame)
    return frame


async def room_send(*, room: str, frame: dict, exclude: str | None = None) -> None:
    """Encode a frame once and hand it to every process holding members of ``room``."""
    event = room_event(room=room, text=protocol.encode(frame), exclude=exclude)
    await get_channel_layer().group_send(room_group(room), event)
