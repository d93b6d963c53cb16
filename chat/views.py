from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from . import protocol

# Stands for a room name in the URL patterns handed to the page's script.
ROOM_PLACEHOLDER = "ROOM_NAME"


def room(request: HttpRequest, room: str = protocol.DEFAULT_ROOM) -> HttpResponse:
    """The chat page for one room; the script reads its settings from the JSON in ``chat-config``."""
    config = {
        "room": room,
        "defaultRoom": protocol.DEFAULT_ROOM,
        "maxLength": settings.CHAT_MAX_MESSAGE_LENGTH,
        "historyLimit": settings.CHAT_HISTORY_LIMIT,
        "nameMaxLength": protocol.NAME_MAX_LENGTH,
        "socketPath": f"/ws/chat/{room}/",
        "lobbyUrl": reverse("chat:lobby"),
        "roomUrl": reverse("chat:room", args=[ROOM_PLACEHOLDER]),
        "roomPlaceholder": ROOM_PLACEHOLDER,
    }
    return render(
        request,
        "chat/room.html",
        {
            "room": room,
            "max_message_length": settings.CHAT_MAX_MESSAGE_LENGTH,
            "name_max_length": protocol.NAME_MAX_LENGTH,
            "chat_config": config,
        },
    )
