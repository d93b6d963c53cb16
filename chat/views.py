from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from . import protocol


def room(request: HttpRequest, room: str = protocol.DEFAULT_ROOM) -> HttpResponse:
    """The chat page for one room."""
    return render(
        request,
        "chat/room.html",
        {"room": room, "max_message_length": settings.CHAT_MAX_MESSAGE_LENGTH},
    )
