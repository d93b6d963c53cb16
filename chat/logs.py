"""One log formatter: the message, then the ids passed in ``extra`` as fields."""

import logging

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
