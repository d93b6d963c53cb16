"""
The management API, shaped like API Gateway's ``@connections``:

- ``POST /@connections/<id>``: the body (UTF-8 text) goes to that socket as
  one text frame, unchanged; ``200`` with an empty body.
- ``GET /@connections/<id>``: ``{"connectedAt", "identity": {"sourceIp",
  "userAgent"}, "lastActiveAt"}``.
- ``DELETE /@connections/<id>``: the socket closes with 4003; ``204``.

A connection that is not live gets ``410`` (API Gateway's GoneException).
Callers authenticate with ``Authorization: Bearer <CHAT_MANAGEMENT_TOKEN>``
(no CSRF check: no cookie is involved) or a staff session (CSRF-checked, and
the connection permissions for POST and DELETE).
"""

import hmac
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from . import protocol, services
from .exceptions import ConnectionGone, StoreError
from .models import LiveConnection

logger = logging.getLogger(__name__)

# Permission a staff session needs per method.
PERMISSIONS = {
    "GET": "chat.view_liveconnection",
    "POST": "chat.message_connection",
    "DELETE": "chat.disconnect_connection",
}


def error_response(status: int, message: str, **headers: str) -> JsonResponse:
    """A refusal as every management endpoint answers one: JSON ``{"message": <a sentence>}``."""
    response = JsonResponse({"message": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _bearer(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def csrf_refusal(request: HttpRequest) -> HttpResponse | None:
    """The CSRF middleware's own check, for requests that came with a session."""
    check = CsrfViewMiddleware(lambda request: HttpResponse())
    check.process_request(request)
    return check.process_view(request, None, (), {})


async def _authorize(request: HttpRequest) -> tuple[HttpResponse | None, object]:
    return await authorize(request, PERMISSIONS[request.method])


async def authorize(request: HttpRequest, permission: str) -> tuple[HttpResponse | None, object]:
    """
    ``(refusal, user)``: a response refusing the request, or None and who is
    asking (None for the management token). A staff session needs
    ``permission`` and passes Django's CSRF check.
    """
    token = _bearer(request)
    if token is not None:
        expected = settings.CHAT_MANAGEMENT_TOKEN
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return None, None
        return error_response(403, "That token is not valid for this server."), None
    user = await request.auser()
    if not user.is_authenticated:
        return error_response(
            401,
            "Authenticate with 'Authorization: Bearer <token>' or a staff session.",
            **{"WWW-Authenticate": 'Bearer realm="@connections"'},
        ), None
    if not (user.is_active and user.is_staff):
        return error_response(403, "Only staff may use the management API."), None
    if not await user.ahas_perm(permission):
        return error_response(403, f"You need the permission {permission} for that."), None
    refusal = csrf_refusal(request)
    if refusal is not None:
        return refusal, None
    return None, user


@csrf_exempt  # checked in _authorize for session requests; a bearer token carries no ambient credential
async def connection(request: HttpRequest, connection_id: str) -> HttpResponse:
    if request.method not in PERMISSIONS:
        response = error_response(405, f"Use {', '.join(PERMISSIONS)}.")
        response["Allow"] = ", ".join(PERMISSIONS)
        return response
    refusal, user = await _authorize(request)
    if refusal is not None:
        return refusal
    try:
        if request.method == "GET":
            return await _get(connection_id)
        if request.method == "POST":
            return await _post(request, connection_id, user)
        return await _delete(connection_id, user)
    except ConnectionGone:
        return error_response(410, f"Connection {connection_id} is not live.")
    except StoreError as error:
        logger.error("@connections failed: %s", error, extra={"connection_id": connection_id})
        return error_response(503, "The connection registry is unavailable; try again shortly.")


async def _get(connection_id: str) -> HttpResponse:
    connection = await services.connection_live(connection_id=connection_id)
    return JsonResponse(
        {
            "connectedAt": connection.connected_at,
            "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            "lastActiveAt": connection.last_active_at,
        }
    )


async def _post(request: HttpRequest, connection_id: str, user) -> HttpResponse:
    body = request.body
    if len(body) > settings.CHAT_MAX_FRAME_BYTES:
        return error_response(
            413, f"The body has {len(body)} bytes; a frame may have at most {settings.CHAT_MAX_FRAME_BYTES}."
        )
    if not body:
        return error_response(400, "The body is empty: put the text to deliver in it.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return error_response(400, "The body is not UTF-8 text; only text frames are delivered.")
    connection = await services.connection_post(connection_id=connection_id, text=text)
    await _log(user, connection, f"Posted a frame of {len(body)} bytes through @connections.")
    return HttpResponse(status=200)


async def _delete(connection_id: str, user) -> HttpResponse:
    connection = await services.connection_close(connection_id=connection_id)
    await _log(user, connection, f"Disconnected through @connections (close code {protocol.CLOSE_BY_OPERATOR}).")
    return HttpResponse(status=204)


async def _log(user, connection, message: str) -> None:
    """Into the admin's log when a staff user acted; token callers have no user, so the app log only."""
    logger.info(message, extra={"connection_id": connection.connection_id, "user": getattr(user, "username", None)})
    if user is None:
        return
    await log_action(
        user,
        LiveConnection(connection_id=connection.connection_id, room=connection.room, name=connection.name),
        message,
    )


async def log_action(user, subject, message: str) -> None:
    """Record what a staff user did to ``subject`` (an instance of a chat model) in the admin's log."""
    await sync_to_async(LogEntry.objects.log_actions)(
        user_id=user.pk, queryset=[subject], action_flag=CHANGE, change_message=message
    )
