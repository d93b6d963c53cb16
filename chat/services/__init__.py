"""
Everything that changes the chat's state, by who acts: ``people``
(connect, send, read history, leave), ``processes`` (heartbeats, sweeps,
drains: what each server process does for the others), ``operators`` (the
admin and the ``@connections`` API), and ``rooms`` (what every process of a
room shares). The consumer, the admin, management commands and the
``@connections`` API all come through here; none of them reaches around
these functions into the stores or the channel layer.
"""

from .conversation import (
    current_quotes,
    message_delete,
    message_edit,
    message_find,
    message_react,
    reply_quote,
    typing_broadcast,
)
from .operators import (
    CLOSED_BY_OPERATOR_MESSAGE,
    ROOM_TOTAL_LIMIT,
    ROOM_TOTALS_MAX_ROOMS,
    connection_close,
    connection_get,
    connection_live,
    connection_notify,
    connection_post,
    connection_touch,
    connections_page,
    room_totals,
)
from .people import (
    Registration,
    connection_disconnect,
    connection_new,
    connection_register,
    history_page,
    message_broadcast,
    message_resent,
)
from .processes import (
    HEARTBEAT_TIMEOUT_INTERVALS,
    STALE_AFTER_INTERVALS,
    connections_let_go,
    connections_retire,
    instance_heartbeat,
    instance_retire,
    instance_sweep,
    instance_sweep_one,
)
from .rooms import room_announce, room_directory, room_roster, room_seed, room_send

__all__ = [
    "CLOSED_BY_OPERATOR_MESSAGE",
    "HEARTBEAT_TIMEOUT_INTERVALS",
    "ROOM_TOTALS_MAX_ROOMS",
    "ROOM_TOTAL_LIMIT",
    "STALE_AFTER_INTERVALS",
    "Registration",
    "connection_close",
    "connection_disconnect",
    "connection_get",
    "connection_live",
    "connection_new",
    "connection_notify",
    "connection_post",
    "connection_register",
    "connection_touch",
    "connections_let_go",
    "connections_page",
    "connections_retire",
    "current_quotes",
    "history_page",
    "instance_heartbeat",
    "instance_retire",
    "instance_sweep",
    "instance_sweep_one",
    "message_broadcast",
    "message_delete",
    "message_edit",
    "message_find",
    "message_react",
    "message_resent",
    "reply_quote",
    "room_announce",
    "room_directory",
    "room_roster",
    "room_seed",
    "room_send",
    "room_totals",
    "typing_broadcast",
]
