"""
The chat's two log formats, chosen by ``CHAT_LOG_FORMAT``: a readable line
with the ids passed in ``extra`` as ``key=value`` fields, or one JSON object
per line with those ids as keys of their own.
"""

import logging
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class FieldsFormatter(logging.Formatter):
    """``2026-11-25 12:00:00 INFO chat.consumers connection registered connection_id=... room=...``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = " ".join(f"{key}={value}" for key, value in vars(record).items() if key not in _STANDARD)
        if not fields:
            return text
        head, sep, tail = text.partition("\n")
        return f"{head} {fields}{sep}{tail}"


class JsonFormatter(_JsonFormatter):
    """
    ``{"time": "2026-11-25T12:00:00.123+00:00", "level": "INFO", "logger":
    "chat.services.people", "message": "connection registered",
    "connection_id": "...", "room": "..."}``: python-json-logger's formatter,
    with the ``extra`` fields as top-level keys, a traceback as ``exc_info``,
    and the time in UTC, to the millisecond.
    """

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
