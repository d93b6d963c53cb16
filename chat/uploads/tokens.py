"""The ``uploadToken`` a welcome frame carries: who may upload into which room, for a while."""

from typing import NamedTuple

from django.conf import settings
from django.core import signing

SALT = "chat.uploads"


class Uploader(NamedTuple):
    connection_id: str
    room: str
    sender: str  # the sender tag (protocol.sender_tag)


def upload_token(uploader: Uploader) -> str:
    return signing.dumps(list(uploader), salt=SALT, compress=True)


def read_upload_token(token: object) -> Uploader | None:
    """The uploader a token names, or None when it is not one of ours or has expired."""
    if not isinstance(token, str) or len(token) > 1000:
        return None
    try:
        values = signing.loads(token, salt=SALT, max_age=settings.CHAT_UPLOAD_TOKEN_TTL)
    except signing.BadSignature:  # SignatureExpired included
        return None
    if not (isinstance(values, list) and len(values) == 3 and all(isinstance(v, str) for v in values)):
        return None
    return Uploader(*values)
