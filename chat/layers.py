"""
The channels-redis layers ``CHAT_CHANNEL_LAYER`` chooses from, as they must
be to spread over several Redis servers (``REDIS_URLS``).

Both put a room's group on one server by a CRC of its name and the number
of servers (``channels_redis.utils._consistent_hash``): ``pubsub`` hashes
``<prefix>__group__room.<name>``, ``core`` hashes ``room.<name>``. A
process's own channel goes the same way, by its whole name under
``pubsub`` and by the part up to ``!`` under ``core``: there, all of a
process's traffic, from every room, comes through that one server.
"""

from channels_redis.core import RedisChannelLayer as _RedisChannelLayer


class RedisChannelLayer(_RedisChannelLayer):
    """
    channels-redis' ``core`` layer, with a ``send`` to one process's channel
    written to the server that process reads from. channels-redis 4.3 picks
    that server by a hash of the whole name (``relay.<process>!<channel>``)
    but files the message under, and receives from the server of, the part
    up to ``!``: with several servers about half the sends to one socket (an
    operator's notice or close) went where nobody reads
    (django/channels_redis#221). Hashing only that part, as its ``receive``
    and ``group_send`` already do, keeps each process's channels on one
    server. Group names never hold ``!``; with one server nothing changes.
    """

    def consistent_hash(self, value: str) -> int:
        return super().consistent_hash(self.non_local_name(value))
