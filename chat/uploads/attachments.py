"""A message's attachments: checked against the bucket before it is sent, and given URLs when shown."""

import asyncio
import logging
from typing import Any

from django.conf import settings

from .. import protocol
from ..exceptions import ProtocolError
from . import storage

logger = logging.getLogger(__name__)


def _refused(sentence: str) -> ProtocolError:
    return ProtocolError(protocol.INVALID_ATTACHMENT, sentence)


async def checked(keys: list[str], *, room: str, sender: str) -> list[dict[str, Any]]:
    """
    The attachments these keys name, each checked with ``HeadObject``: it
    exists, under this room's prefix, its size the one signed and within the
    limit, its type allowed, and uploaded by this sender. ``ProtocolError``
    (``invalid_attachment``) otherwise.
    """
    if not storage.uploads_enabled():
        raise _refused("This chat takes no files.")
    if any(not key.startswith(storage.room_prefix(room)) for key in keys):
        raise _refused("That file was uploaded for another room: upload it here again.")
    try:
        found = await asyncio.gather(*(storage.head(key) for key in keys))
    except storage.Missing:
        raise _refused("That file is not there: upload it again.") from None
    except storage.UNAVAILABLE as error:
        logger.warning("attachments not checked: %s", error, extra={"room": room})
        raise ProtocolError(protocol.SERVER_UNAVAILABLE, "Files cannot be checked just now; try again.") from None
    attachments = []
    for key, head in zip(keys, found, strict=True):
        if head["sender"] != sender:
            raise _refused("Only the person who uploaded a file may send it.")
        if str(head["size"]) != head["signed_size"] or head["size"] > settings.CHAT_MAX_UPLOAD_BYTES:
            raise _refused("That file is not the one that was signed for: upload it again.")
        if head["type"] not in settings.CHAT_UPLOAD_TYPES:
            raise _refused("That kind of file cannot be sent here.")
        attachments.append(
            {"key": key, "name": head["name"] or key.rsplit("/", 1)[-1], "size": head["size"], "type": head["type"]}
        )
    return attachments


async def mark_sent(attachments: list[dict[str, Any]]) -> None:
    """Tag each object as sent (so the rule for unsent uploads leaves it); a failure is logged, not raised."""
    for attachment in attachments:
        try:
            await storage.mark_sent(attachment["key"])
        except storage.UNAVAILABLE:
            logger.warning("attachment not marked as sent", exc_info=True, extra={"key": attachment["key"]})


async def forget(message: dict[str, Any]) -> None:
    """A deleted message's objects go too; a failure is logged (the lifecycle rule removes them later)."""
    keys = [attachment["key"] for attachment in message.get("attachments") or []]
    if not keys or not storage.uploads_enabled():
        return
    try:
        await storage.delete(keys)
    except storage.UNAVAILABLE:
        logger.warning("attachments not deleted", exc_info=True, extra={"keys": keys})


def with_urls(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Frames whose attachments carry fresh URLs (a presigned GET expires)."""
    if not storage.uploads_enabled():
        return frames
    fresh = []
    for frame in frames:
        if frame.get("attachments"):
            frame = {**frame, "attachments": [{**a, "url": storage.url(a)} for a in frame["attachments"]]}
        fresh.append(frame)
    return fresh


def stored(attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attachments as the history keeps them: without URLs, which are made when shown."""
    return [{key: a[key] for key in ("key", "name", "size", "type")} for a in attachments]
