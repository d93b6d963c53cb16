"""
The configured connection store, built once per process from
``settings.CHAT_CONNECTION_STORE`` (``BACKEND`` dotted path, ``OPTIONS``
keyword arguments) and dropped when that setting changes.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .base import Connection, ConnectionStore, Page

__all__ = ["Connection", "ConnectionStore", "Page", "get_connection_store"]

_store: ConnectionStore | None = None


def get_connection_store() -> ConnectionStore:
    global _store
    if _store is None:
        _store = build_connection_store(settings.CHAT_CONNECTION_STORE)
    return _store


def build_connection_store(config: dict) -> ConnectionStore:
    path = config.get("BACKEND", "")
    try:
        backend = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"CHAT_CONNECTION_STORE BACKEND {path!r} cannot be imported ({error}); "
            "use e.g. 'chat.stores.dynamodb.DynamoDBConnectionStore'."
        ) from error
    if not (isinstance(backend, type) and issubclass(backend, ConnectionStore)):
        raise ImproperlyConfigured(f"CHAT_CONNECTION_STORE BACKEND {path!r} is not a ConnectionStore.")
    return backend(**config.get("OPTIONS", {}))


def _reset(*, setting: str, **kwargs) -> None:
    global _store
    if setting == "CHAT_CONNECTION_STORE":
        _store = None


setting_changed.connect(_reset)
