"""
The moderation API, beside ``@connections`` and authorized the same way
(``Authorization: Bearer <CHAT_MANAGEMENT_TOKEN>``, or a staff session with
the permission named below, CSRF-checked):

- ``DELETE /@messages/<room>/<messageId>`` (``chat.moderate_messages``):
  the message becomes a tombstone and the room gets ``message_deleted``; 204.
- ``GET /@rooms/<room>`` (``chat.view_moderatedroom``): its slow mode, lock and mutes.
- ``PUT /@rooms/<room>`` ``{"slowModeSeconds": N, "locked": bool}`` (``chat.moderate_rooms``).
- ``POST /@rooms/<room>/mutes`` ``{"name", "seconds"}``, ``DELETE
  /@rooms/<room>/mutes/<name>`` (``chat.moderate_people``).
- ``POST /@bans`` ``{"name", "seconds"}``, ``DELETE /@bans/<name>`` (``chat.moderate_people``).

Refusals are JSON ``{"message": <a sentence>}`` with the status saying why.
"""

import json
import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .. import protocol
from ..api import authorize, error_response, log_action
from ..exceptions import ProtocolError, StoreError, UnknownMessage
from ..models import MODERATE_MESSAGES, MODERATE_PEOPLE, MODERATE_ROOMS, VIEW_ROOMS, LiveConnection, ModeratedRoom
from . import actions

logger = logging.getLogger(__name__)

# Longest slow mode, in seconds (a day).
LONGEST_SLOW_MODE = 24 * 3600


class BadRequest(Exception):
    """The request body is not what the endpoint takes; the message says what is."""


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The body is not JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


def _whole(body: dict[str, Any], field: str, low: int, high: int) -> int:
    value = body.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f'"{field}" must be a whole number from {low} to {high}.')
    return value


def _person(body: dict[str, Any]) -> tuple[str, int]:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise BadRequest('"name" must be the display name or username of the person (1 to 64 characters).')
    return name.strip(), _whole(body, "seconds", 1, actions.LONGEST)


def _endpoint(methods: dict[str, str]):
    """An endpoint taking ``methods`` (method -> permission), with refusals and store failures answered in words."""

    def wrap(handler):
        @csrf_exempt  # checked in authorize() for session requests; a bearer token carries no ambient credential
        async def view(request: HttpRequest, **kwargs: str) -> HttpResponse:
            if request.method not in methods:
                response = error_response(405, f"Use {', '.join(methods)}.")
                response["Allow"] = ", ".join(methods)
                return response
            room = kwargs.get("room")
            if room is not None and not protocol.valid_room(room):
                return error_response(404, "That is not a room name: 1 to 64 of A-Z a-z 0-9 _ -.")
            refusal, user = await authorize(request, methods[request.method])
            if refusal is not None:
                return refusal
            try:
                return await handler(request, user, **kwargs)
            except BadRequest as error:
                return error_response(400, str(error))
            except StoreError as error:
                logger.error("moderation failed: %s", error, extra={"room": room})
                return error_response(503, "The chat's store is unavailable; try again shortly.")

        return view

    return wrap


async def _logged(user, subject, message: str) -> None:
    logger.info(message, extra={"user": getattr(user, "username", None)})
    if user is not None:
        await log_action(user, subject, message)


@_endpoint({"DELETE": MODERATE_MESSAGES})
async def message(request: HttpRequest, user, *, room: str, message_id: str) -> HttpResponse:
    if not protocol.valid_message_id(message_id):
        return error_response(404, "That is not a message id.")
    try:
        await actions.message_remove(room=room, message_id=message_id)
    except (UnknownMessage, ProtocolError):
        return error_response(404, f"#{room} has no message {message_id}.")
    await _logged(user, ModeratedRoom(name=room), f"Deleted message {message_id}.")
    return HttpResponse(status=204)


@_endpoint({"GET": VIEW_ROOMS, "PUT": MODERATE_ROOMS})
async def room(request: HttpRequest, user, *, room: str) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse(actions.rules_json(room, await actions.room_rules(room=room)))
    body = _body(request)
    slow = _whole(body, "slowModeSeconds", 0, LONGEST_SLOW_MODE) if "slowModeSeconds" in body else None
    locked = body.get("locked")
    if locked is not None and not isinstance(locked, bool):
        raise BadRequest('"locked" must be true or false.')
    if slow is None and locked is None:
        raise BadRequest('Give "slowModeSeconds", "locked", or both.')
    rules = await actions.room_rules_set(room=room, slow_mode=slow, locked=locked)
    await _logged(
        user,
        ModeratedRoom(name=room),
        f"Set slow mode to {rules.slow_mode} s and {'locked' if rules.locked else 'unlocked'}.",
    )
    return JsonResponse(actions.rules_json(room, rules))


@_endpoint({"POST": MODERATE_PEOPLE})
async def mutes(request: HttpRequest, user, *, room: str) -> HttpResponse:
    name, seconds = _person(_body(request))
    until = await actions.person_mute(room=room, name=name, seconds=seconds)
    await _logged(user, ModeratedRoom(name=room), f"Muted {name} for {seconds} s.")
    return JsonResponse({"room": room, "name": name, "until": protocol.iso_timestamp_of(until)}, status=201)


@_endpoint({"DELETE": MODERATE_PEOPLE})
async def mute(request: HttpRequest, user, *, room: str, name: str) -> HttpResponse:
    if not await actions.person_unmute(room=room, name=name):
        return error_response(404, f"Nobody is muted as {name} in #{room}.")
    await _logged(user, ModeratedRoom(name=room), f"Lifted the mute of {name}.")
    return HttpResponse(status=204)


@_endpoint({"POST": MODERATE_PEOPLE})
async def bans(request: HttpRequest, user) -> HttpResponse:
    name, seconds = _person(_body(request))
    until, closed = await actions.person_ban(name=name, seconds=seconds)
    await _logged(user, LiveConnection(connection_id=f"ban:{name}", name=name), f"Banned {name} for {seconds} s.")
    body = {"name": name, "until": protocol.iso_timestamp_of(until), "closed": len(closed)}
    return JsonResponse(body, status=201)


@_endpoint({"DELETE": MODERATE_PEOPLE})
async def ban(request: HttpRequest, user, *, name: str) -> HttpResponse:
    if not await actions.person_unban(name=name):
        return error_response(404, f"Nobody is banned as {name}.")
    await _logged(user, LiveConnection(connection_id=f"ban:{name}", name=name), f"Lifted the ban of {name}.")
    return HttpResponse(status=204)
