from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie

from . import protocol, services

# Stands for a room name in the URL patterns handed to the page's script.
ROOM_PLACEHOLDER = "ROOM_NAME"


@ensure_csrf_cookie  # a logged-in person's upload request carries the session cookie, so it is CSRF-checked
def room(request: HttpRequest, room: str = protocol.DEFAULT_ROOM) -> HttpResponse:
    """The chat page for one room; the script reads its settings from the JSON in ``chat-config``."""
    config = {
        "room": room,
        "defaultRoom": protocol.DEFAULT_ROOM,
        "maxLength": settings.CHAT_MAX_MESSAGE_LENGTH,
        "historyLimit": settings.CHAT_HISTORY_LIMIT,
        "editWindow": settings.CHAT_EDIT_WINDOW,
        "uploadsUrl": reverse("chat:uploads"),
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


@never_cache
async def rooms(request: HttpRequest) -> HttpResponse:
    """
    The room directory: rooms with people in them now, busiest first, with
    their counts; ``?q=`` keeps those whose names contain it. ``?format=json``
    answers ``{"rooms": [{"room", "count"}]}`` (the page refreshes from it).
    """
    search = request.GET.get("q", "")[:64]
    listing = await services.room_directory(search=search)
    if request.GET.get("format") == "json":
        return JsonResponse({"rooms": listing, "search": search})
    entries = [{**entry, "url": reverse("chat:room", args=[entry["room"]])} for entry in listing]
    return render(
        request,
        "chat/rooms.html",
        {
            "rooms": entries,
            "search": search,
            "directory_config": {
                "roomUrl": reverse("chat:room", args=[ROOM_PLACEHOLDER]),
                "roomPlaceholder": ROOM_PLACEHOLDER,
                "refreshSeconds": 10,
            },
        },
    )
