"""
The uploads bucket, through one boto3 client per process. Signing is local
work; ``head``, ``delete`` and ``mark_sent`` are calls, run off the event loop.
"""

import asyncio
import functools
import re
import threading
from typing import Any
from urllib.parse import quote, unquote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from .. import protocol

# Shown inline in the page; everything else is a download.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
PREFIX = "uploads"
# A signed POST is good for this long (seconds): long enough for a large file on a slow phone.
POST_TTL = 900
SENT_TAG = "chat-sent"
_UNSENT_TAGGING = f"<Tagging><TagSet><Tag><Key>{SENT_TAG}</Key><Value>no</Value></Tag></TagSet></Tagging>"

_client_lock = threading.Lock()
_clients: dict[tuple, Any] = {}


def uploads_enabled() -> bool:
    return bool(settings.CHAT_UPLOADS_BUCKET)


def _client():
    key = (settings.CHAT_UPLOADS_BUCKET, settings.AWS_S3_ENDPOINT_URL, settings.AWS_S3_REGION_NAME)
    with _client_lock:
        if key not in _clients:
            # Path-style on a local endpoint, so URLs are on the endpoint's own origin (the page's CSP names it).
            style = {"addressing_style": "path"} if settings.AWS_S3_ENDPOINT_URL else {}
            config = Config(
                connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}, s3=style
            )
            _clients[key] = boto3.client(
                "s3", endpoint_url=settings.AWS_S3_ENDPOINT_URL, region_name=settings.AWS_S3_REGION_NAME, config=config
            )
        return _clients[key]


def safe_name(name: str) -> str:
    """A file name for the key: letters, digits, ``.``, ``-`` and ``_``, at most 100 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:100]
    return cleaned or "file"


def new_key(room: str, name: str) -> str:
    return f"{PREFIX}/{room}/{protocol.new_message_id()}/{safe_name(name)}"


def room_prefix(room: str) -> str:
    return f"{PREFIX}/{room}/"


def _disposition(name: str) -> str:
    return f"attachment; filename*=UTF-8''{quote(name, safe='')}"


def presigned_post(*, key: str, name: str, size: int, content_type: str, sender: str) -> dict[str, Any]:
    """A POST the browser sends the file with; its conditions pin the bucket, key, type, metadata and size."""
    fields = {
        "Content-Type": content_type,
        "x-amz-meta-sender": sender,
        "x-amz-meta-size": str(size),
        "x-amz-meta-name": quote(name, safe=""),
        "tagging": _UNSENT_TAGGING,
    }
    if content_type not in INLINE_TYPES:
        fields["Content-Disposition"] = _disposition(name)
    conditions = [{"bucket": settings.CHAT_UPLOADS_BUCKET}, *({k: v} for k, v in fields.items())]
    conditions.append(["content-length-range", 1, settings.CHAT_MAX_UPLOAD_BYTES])
    signed = _client().generate_presigned_post(
        Bucket=settings.CHAT_UPLOADS_BUCKET, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=POST_TTL
    )
    return {"key": key, "url": signed["url"], "fields": signed["fields"]}


class Missing(Exception):
    """No such object (or S3 would not say)."""


async def head(key: str) -> dict[str, Any]:
    """The object's size, type and metadata; ``Missing`` if it is not there."""
    call = functools.partial(_client().head_object, Bucket=settings.CHAT_UPLOADS_BUCKET, Key=key)
    try:
        response = await asyncio.to_thread(call)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "403", "NoSuchKey", "NotFound"):
            raise Missing(key) from None
        raise
    metadata = {k.lower(): v for k, v in response.get("Metadata", {}).items()}
    return {
        "size": response["ContentLength"],
        "type": response.get("ContentType", ""),
        "sender": metadata.get("sender", ""),
        "signed_size": metadata.get("size", ""),
        "name": unquote(metadata.get("name", "")),
    }


async def mark_sent(key: str) -> None:
    """Tag the object as sent in a message: the lifecycle rule for unsent uploads passes it over."""
    call = functools.partial(
        _client().put_object_tagging,
        Bucket=settings.CHAT_UPLOADS_BUCKET,
        Key=key,
        Tagging={"TagSet": [{"Key": SENT_TAG, "Value": "yes"}]},
    )
    await asyncio.to_thread(call)


async def delete(keys: list[str]) -> None:
    for key in keys:
        await asyncio.to_thread(
            functools.partial(_client().delete_object, Bucket=settings.CHAT_UPLOADS_BUCKET, Key=key)
        )


def url(attachment: dict[str, Any]) -> str:
    """Where the page shows or downloads an attachment: CloudFront, or a presigned GET."""
    if settings.CHAT_UPLOADS_CDN_DOMAIN:
        return f"https://{settings.CHAT_UPLOADS_CDN_DOMAIN}/{quote(attachment['key'])}"
    params = {
        "Bucket": settings.CHAT_UPLOADS_BUCKET,
        "Key": attachment["key"],
        "ResponseContentType": attachment["type"],
    }
    if attachment["type"] not in INLINE_TYPES:
        params["ResponseContentDisposition"] = _disposition(attachment["name"])
    return _client().generate_presigned_url("get_object", Params=params, ExpiresIn=settings.CHAT_ATTACHMENT_URL_TTL)


UNAVAILABLE = (BotoCoreError, ClientError)


def ensure_bucket(*, origins: list[str]) -> bool:
    """Create the uploads bucket if missing (a local S3), and let the page's origins POST and GET; True if created."""
    client = _client()
    bucket = settings.CHAT_UPLOADS_BUCKET
    try:
        client.head_bucket(Bucket=bucket)
        created = False
    except ClientError:
        client.create_bucket(Bucket=bucket)
        created = True
    client.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": origins,
                    "AllowedMethods": ["POST", "GET"],
                    "AllowedHeaders": ["*"],
                    "MaxAgeSeconds": 3600,
                }
            ]
        },
    )
    return created
