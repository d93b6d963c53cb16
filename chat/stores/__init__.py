"""
The configured stores, each built once per process from its setting
(``BACKEND`` dotted path, ``OPTIONS`` keyword arguments) and dropped when
that setting changes:

- ``CHAT_CONNECTION_STORE``: live connections and server heartbeats;
- ``CHAT_MESSAGE_STORE``: room history;
- ``CHAT_MODERATION_STORE``: rooms' rules, mutes and bans.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .base import Connection, ConnectionStore, Instance, MessageStore, ModerationStore, Page

__all__ = [
    "Connection",
    "ConnectionStore",
    "Instance",
    "MessageStore",
    "ModerationStore",
    "Page",
    "build_connection_store",
    "build_message_store",
    "build_moderation_store",
    "get_connection_store",
    "get_message_store",
    "get_moderation_store",
]

_built: dict[str, object] = {}


def get_connection_store() -> ConnectionStore:
    if "CHAT_CONNECTION_STORE" not in _built:
        _built["CHAT_CONNECTION_STORE"] = build_connection_store(settings.CHAT_CONNECTION_STORE)
    return _built["CHAT_CONNECTION_STORE"]


def get_message_store() -> MessageStore:
    if "CHAT_MESSAGE_STORE" not in _built:
        _built["CHAT_MESSAGE_STORE"] = build_message_store(settings.CHAT_MESSAGE_STORE)
    return _built["CHAT_MESSAGE_STORE"]


def get_moderation_store() -> ModerationStore:
    if "CHAT_MODERATION_STORE" not in _built:
        _built["CHAT_MODERATION_STORE"] = build_moderation_store(settings.CHAT_MODERATION_STORE)
    return _built["CHAT_MODERATION_STORE"]


def build_moderation_store(config: dict) -> ModerationStore:
    return _build("CHAT_MODERATION_STORE", config, ModerationStore, "chat.stores.dynamodb.DynamoDBModerationStore")


def build_connection_store(config: dict) -> ConnectionStore:
    return _build("CHAT_CONNECTION_STORE", config, ConnectionStore, "chat.stores.dynamodb.DynamoDBConnectionStore")


def build_message_store(config: dict) -> MessageStore:
    return _build("CHAT_MESSAGE_STORE", config, MessageStore, "chat.stores.dynamodb.DynamoDBMessageStore")


def _build(setting: str, config: dict, interface: type, example: str):
    path = config.get("BACKEND", "")
    try:
        backend = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"{setting} BACKEND {path!r} cannot be imported ({error}); use e.g. {example!r}."
        ) from error
    if not (isinstance(backend, type) and issubclass(backend, interface)):
        raise ImproperlyConfigured(f"{setting} BACKEND {path!r} is not a {interface.__name__}.")
    return backend(**config.get("OPTIONS", {}))


def _reset(*, setting: str, **kwargs) -> None:
    _built.pop(setting, None)


setting_changed.connect(_reset)
