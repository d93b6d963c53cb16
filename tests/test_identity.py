"""Who is chatting: logged-in visitors under their username, guests under a name nobody registered."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from chat import protocol
from chatsite.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(username: str) -> bytes:
    """A real login session for a new user, as the browser would send it."""
    user = get_user_model().objects.create_user(username=username, password="pw-123456789")
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(room: str, query: str = "", cookie: bytes | None = None) -> WebsocketCommunicator:
    headers = [(b"cookie", cookie)] if cookie else []
    communicator = WebsocketCommunicator(application, f"/ws/chat/{room}/{query}", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


async def test_a_logged_in_visitor_chats_under_their_username_whatever_name_they_ask_for(room):
    cookie = await sync_to_async(session_cookie)("margaret")
    communicator = await connect(room, "?name=Someone%20Else", cookie)
    welcome = await communicator.receive_json_from(timeout=10)
    assert welcome["name"] == "margaret"
    await communicator.disconnect()


async def test_a_guest_cannot_pass_for_a_registered_user(room):
    await sync_to_async(get_user_model().objects.create_user)(username="Grace", password="pw-123456789")
    communicator = await connect(room, "?name=grace")
    welcome = await communicator.receive_json_from(timeout=10)
    assert welcome["name"] == "grace (guest)"
    await communicator.disconnect()


async def test_without_guests_an_anonymous_visitor_is_told_to_log_in_and_closed(room):
    cookie = await sync_to_async(session_cookie)("ada")
    with override_settings(CHAT_ALLOW_ANONYMOUS=False):
        guest = await connect(room, "?name=Guest")
        notice = await guest.receive_json_from(timeout=10)
        assert notice["type"] == protocol.ERROR and notice["code"] == protocol.LOGIN_REQUIRED
        closed = await guest.receive_output(timeout=10)
        assert closed == {"type": "websocket.close", "code": protocol.CLOSE_LOGIN_REQUIRED}

        member = await connect(room, "", cookie)
        welcome = await member.receive_json_from(timeout=10)
        assert welcome["type"] == protocol.WELCOME and welcome["name"] == "ada"
        await member.disconnect()
