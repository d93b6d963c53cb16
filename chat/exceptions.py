"""Every error the chat app raises, under one root."""


class ChatError(Exception):
    """Root of the chat app's errors."""


class ProtocolError(ChatError):
    """A client frame broke the wire protocol; ``code`` is sent back to it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StoreError(ChatError):
    """The connection store failed in a way the caller cannot fix by retrying."""


class StoreUnavailable(StoreError):
    """The connection store could not be reached, or its table is missing."""


class ConditionFailed(StoreError):
    """A conditional write found the item not as it required."""


class ConnectionExists(ConditionFailed):
    """A connection with this id is already registered."""


class ConnectionGone(ChatError):
    """The connection is not live (never was, or has closed): API Gateway's GoneException."""


class UnknownMessage(ChatError):
    """The room has no such message (or it was deleted, for a change that needs its text)."""


class TooManyReactions(ChatError):
    """The sender already has the most distinct reactions one person may put on that message."""
