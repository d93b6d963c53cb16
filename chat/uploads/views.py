"""``POST /api/uploads/``: sign an upload for the holder of an ``uploadToken`` (docs/uploads.md)."""

import json
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ..api import csrf_refusal
from ..limits import TokenBucket
from . import storage
from .tokens import read_upload_token

logger = logging.getLogger(__name__)

# Sender tag -> its bucket of signatures; the oldest are dropped past this many senders.
_buckets: dict[str, TokenBucket] = {}
_BUCKETS_KEPT = 10_000


def refusal(status: int, code: str, sentence: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": sentence}, status=status)


def _allowed(sender: str) -> bool:
    bucket = _buckets.get(sender)
    if bucket is None:
        if len(_buckets) >= _BUCKETS_KEPT:
            del _buckets[next(iter(_buckets))]
        per_minute = settings.CHAT_UPLOADS_PER_MINUTE
        bucket = _buckets[sender] = TokenBucket(per_minute / 60, per_minute)
    return bucket.take()


@csrf_exempt  # the token is the credential; a request with the session cookie is CSRF-checked below
def uploads(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = refusal(405, "bad_request", "Use POST.")
        response["Allow"] = "POST"
        return response
    if settings.SESSION_COOKIE_NAME in request.COOKIES and csrf_refusal(request) is not None:
        return refusal(403, "invalid_token", "The page's CSRF token is missing or wrong: reload the page.")
    if not storage.uploads_enabled():
        return refusal(503, "uploads_unavailable", "This chat takes no files.")
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return refusal(400, "bad_request", 'Send JSON: {"token", "name", "size", "type"}.')
    uploader = read_upload_token(body.get("token"))
    if uploader is None:
        return refusal(403, "invalid_token", "That upload token is not valid or has expired: reconnect and try again.")
    name, size, kind = body.get("name"), body.get("size"), body.get("type")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        return refusal(400, "bad_request", 'Put the file\'s name in "name" (1 to 255 characters).')
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        return refusal(400, "bad_request", 'Put the file\'s size in bytes in "size".')
    if not isinstance(kind, str):
        return refusal(400, "bad_request", 'Put the file\'s MIME type in "type".')
    if size > settings.CHAT_MAX_UPLOAD_BYTES:
        return refusal(
            413, "too_large", f"That file has {size} bytes; the limit is {settings.CHAT_MAX_UPLOAD_BYTES} bytes."
        )
    if kind not in settings.CHAT_UPLOAD_TYPES:
        allowed = ", ".join(settings.CHAT_UPLOAD_TYPES)
        return refusal(
            415, "type_not_allowed", f"Files of type {kind[:80]!r} cannot be sent here; these can: {allowed}."
        )
    if not _allowed(uploader.sender):
        return refusal(429, "rate_limited", "Too many files at once: wait a minute, then try again.")
    name = name.strip()
    signed = storage.presigned_post(
        key=storage.new_key(uploader.room, name), name=name, size=size, content_type=kind, sender=uploader.sender
    )
    logger.info("upload signed", extra={"room": uploader.room, "key": signed["key"], "bytes": size})
    return JsonResponse(signed, status=201)
