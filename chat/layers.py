"""
The channels-redis layers ``CHAT_CHANNEL_LAYER`` chooses from, as they must
be to spread over several Redis servers (``REDIS_URLS``).

Both put a room's group on one server by a CRC of its name and the number
of servers (``channels_redis.utils._consistent_hash``): ``pubsub`` hashes
``<prefix>__group__room.<name>``, ``core`` hashes ``room.<name>``. A
process's own channel goes the same way, by its whole name under
``pubsub`` and by the part up to ``!`` under ``core``: there, all of a
process's traffic, from every room, comes through that one server.

``pubsub`` also publishes in pipelines (``RedisPubSubChannelLayer``).
"""

import asyncio
from typing import Any

from channels_redis.core import RedisChannelLayer as _RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer as _RedisPubSubChannelLayer
from channels_redis.pubsub import RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close, decode_hosts


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


class PipelinedShard(RedisSingleShardConnection):
    """
    One Redis server of the ``pubsub`` layer, publishing in pipelines.
    channels-redis 4.3 publishes one message at a time under a lock, each
    waiting for Redis' answer to the one before: a busy process's room
    messages queued behind one another (about 200 a second here, and
    seconds late). Here a publish waits only for the pipeline that is on
    its way; the next takes every publish made meanwhile, in the order
    made, so one round trip carries them all.
    """

    def __init__(self, host: Any, channel_layer: Any) -> None:
        super().__init__(host, channel_layer)
        self._outbox: list[tuple[str, bytes, asyncio.Future]] = []
        self._sender: asyncio.Task | None = None

    async def publish(self, channel: str, message: bytes) -> None:
        done = asyncio.get_running_loop().create_future()
        self._outbox.append((channel, message, done))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_outbox())
        await done

    async def _send_outbox(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                self._ensure_redis()
                pipeline = self._redis.pipeline(transaction=False)
                for channel, message, _ in batch:
                    pipeline.publish(channel, message)
                await pipeline.execute()
            except Exception as error:
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(error)
                continue
            except BaseException:
                for _, _, done in batch + self._outbox:
                    done.cancel()
                raise
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)


class _PipelinedLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, hosts: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(hosts, *args, **kwargs)
        self._shards = [PipelinedShard(host, self) for host in decode_hosts(hosts)]


class RedisPubSubChannelLayer(_RedisPubSubChannelLayer):
    """channels-redis' ``pubsub`` layer, its publishes pipelined (``PipelinedShard``)."""

    def _get_layer(self) -> RedisPubSubLoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _PipelinedLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return layer
