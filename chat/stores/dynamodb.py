"""
The connection registry in DynamoDB, the store the product is built around.

Table ``ChatConnections`` (name from settings): partition key
``connectionId``; global secondary index ``room-index`` (``room``,
``connectedAt``) so a room's members are a Query, never a Scan; index
``instance-index`` (``instanceId``) to find what one server process holds;
TTL on ``expiresAt``.

boto3 is synchronous. Its calls run on a thread pool this store owns, as
large as botocore's connection pool, so they neither block the event loop
nor queue behind one another on a single thread.
"""

import asyncio
import base64
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import ImproperlyConfigured

from .. import metrics, protocol
from .base import (
    PENDING_SEND_LAPSE,
    SEND_PENDING,
    ConditionFailed,
    Connection,
    ConnectionExists,
    ConnectionStore,
    Instance,
    MessageStore,
    ModerationStore,
    Mute,
    Page,
    RoomRules,
    StoreError,
    StoreUnavailable,
    TooManyReactions,
    UnknownMessage,
)

logger = logging.getLogger(__name__)

ROOM_INDEX = "room-index"
INSTANCE_INDEX = "instance-index"
TTL_ATTRIBUTE = "expiresAt"
# BatchWriteItem takes at most 25 requests; what DynamoDB leaves unprocessed is retried this often.
BATCH_SIZE = 25
BATCH_ATTEMPTS = 5
# Rooms a message store remembers having a seq counter (the oldest forgotten first).
COUNTERS_KEPT = 10_000

# Item attribute for each Connection field.
_ATTRIBUTES = {
    "connection_id": "connectionId",
    "channel_name": "channelName",
    "room": "room",
    "name": "name",
    "connected_at": "connectedAt",
    "instance_id": "instanceId",
    "source_ip": "sourceIp",
    "user_agent": "userAgent",
    "expires_at": TTL_ATTRIBUTE,
    "last_active_at": "lastActiveAt",
    "sender": "sender",
}
_UNAVAILABLE_CODES = {
    "ResourceNotFoundException",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
}


class DynamoDBTable:
    """
    One DynamoDB table reached through a shared boto3 client and this
    object's own thread pool; every call's errors come out as ``StoreError``.
    """

    def __init__(
        self,
        *,
        table_name: str,
        region_name: str = "us-east-1",
        endpoint_url: str | None = None,
        max_workers: int = 32,
        connect_timeout: float = 2,
        read_timeout: float = 5,
        max_attempts: int = 3,
    ) -> None:
        if not isinstance(table_name, str) or not table_name:
            raise ImproperlyConfigured(f"table_name={table_name!r}: name the DynamoDB table, e.g. 'ChatConnections'.")
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ImproperlyConfigured(f"max_workers={max_workers!r}: use a whole number of threads, 1 or more.")
        self.table_name = table_name
        self.endpoint = endpoint_url or f"DynamoDB in {region_name}"
        self.client, self._executor = _client_and_pool(
            region_name, endpoint_url, max_workers, connect_timeout, read_timeout, max_attempts
        )

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Run one client operation on the pool, translating its errors; timed and counted by its API name."""
        method = getattr(self.client, operation)
        api_name = self.client.meta.method_to_api_mapping.get(operation, operation)  # put_item -> PutItem
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(method, **params))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            metrics.DYNAMODB_ERRORS.labels(api_name, code or "unknown").inc()
            if code == "ConditionalCheckFailedException":
                raise ConditionFailed(f"{operation} on {self.table_name}: condition not met") from None
            if code == "ResourceNotFoundException":
                raise StoreUnavailable(
                    f"table {self.table_name} does not exist at {self.endpoint}: run 'python manage.py ensure_tables'"
                ) from None
            if code in _UNAVAILABLE_CODES:
                raise StoreUnavailable(f"{self.endpoint} refused {operation}: {code}") from None
            raise StoreError(f"{operation} on {self.table_name} at {self.endpoint} failed: {error}") from None
        except BotoCoreError as error:
            metrics.DYNAMODB_ERRORS.labels(api_name, type(error).__name__).inc()
            raise StoreUnavailable(f"{self.endpoint} unreachable for {operation}: {error}") from None
        finally:
            metrics.DYNAMODB_SECONDS.labels(api_name).observe(time.perf_counter() - started)

    async def get_item(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """One item by its key, read consistently, or None."""
        response = await self.call("get_item", TableName=self.table_name, Key=key, ConsistentRead=True)
        return response.get("Item")

    async def ensure(self, definition: dict[str, Any], ttl_attribute: str | None = None) -> bool:
        """Create the table if missing, wait until it is active, turn TTL on. True if created."""
        try:
            described = await self.call("describe_table", TableName=self.table_name)
        except StoreUnavailable:
            described = None
        if described is None:
            await self.call("create_table", TableName=self.table_name, **definition)
        elif described["Table"]["KeySchema"] != definition["KeySchema"]:
            wanted = ", ".join(f"{k['AttributeName']} ({k['KeyType']})" for k in definition["KeySchema"])
            raise StoreError(
                f"table {self.table_name} at {self.endpoint} has another key than this version needs ({wanted}): "
                "delete it, or name a new table in the settings, then run 'python manage.py ensure_tables'"
            )
        created = described is None
        waiter = self.client.get_waiter("table_exists")
        await asyncio.to_thread(waiter.wait, TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        if ttl_attribute:
            ttl = await self.call("describe_time_to_live", TableName=self.table_name)
            if ttl["TimeToLiveDescription"].get("TimeToLiveStatus") not in {"ENABLED", "ENABLING"}:
                await self.call(
                    "update_time_to_live",
                    TableName=self.table_name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
                )
        return created


@functools.cache
def _client_and_pool(
    region_name: str,
    endpoint_url: str | None,
    max_workers: int,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
) -> tuple[Any, ThreadPoolExecutor]:
    """
    One boto3 client per process and endpoint, shared by every table (clients
    are thread-safe once built), with a thread pool as large as its HTTP pool.
    """
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_workers,
    )
    client = boto3.session.Session().client(
        "dynamodb", region_name=region_name, endpoint_url=endpoint_url, config=config
    )
    return client, ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="dynamodb")


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError:
        raise StoreError(f"cursor {cursor[:40]!r} is not one this store gave out") from None
    if not isinstance(key, dict):
        raise StoreError(f"cursor {cursor[:40]!r} is not one this store gave out")
    return key


def _to_item(connection: Connection) -> dict[str, Any]:
    item = {attribute: {"S": getattr(connection, field)} for field, attribute in _ATTRIBUTES.items()}
    item[TTL_ATTRIBUTE] = {"N": str(connection.expires_at)}
    if connection.last_active_at == connection.connected_at:
        del item["lastActiveAt"]  # written by touch() once there is activity to record
    if not connection.sender:
        del item["sender"]
    return item


def _from_item(item: dict[str, Any]) -> Connection:
    values = {}
    for field, attribute in _ATTRIBUTES.items():
        value = item.get(attribute, {})
        values[field] = int(value["N"]) if "N" in value else value.get("S", "")
    return Connection(**values)


def _tables(setting: str, options: dict[str, Any], **extra_tables: str) -> list[DynamoDBTable]:
    """The store's tables from its OPTIONS: ``table_name`` plus the ``*_table_name`` extras."""
    names = {key: options.pop(key, default) for key, default in extra_tables.items()}
    try:
        first = DynamoDBTable(**options)
        return [first, *(DynamoDBTable(**{**options, "table_name": name}) for name in names.values())]
    except TypeError as error:
        raise ImproperlyConfigured(f"{setting}['OPTIONS']: {error}") from None


async def _query_all(table: DynamoDBTable, params: dict[str, Any], *, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` items of a Query, across DynamoDB's 1 MB pages; True when more exist."""
    items: list[dict[str, Any]] = []
    params = {**params, "TableName": table.table_name}
    for _ in range(1000):
        response = await table.call("query", **{**params, "Limit": limit + 1 - len(items)})
        items += response["Items"]
        if len(items) > limit or "LastEvaluatedKey" not in response:
            break
        params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return items[:limit], len(items) > limit


async def _batch_write(table: DynamoDBTable, requests: list[dict[str, Any]]) -> None:
    """One BatchWriteItem of up to ``BATCH_SIZE`` requests, with what DynamoDB leaves unprocessed sent again."""
    for attempt in range(BATCH_ATTEMPTS):
        response = await table.call("batch_write_item", RequestItems={table.table_name: requests})
        requests = response.get("UnprocessedItems", {}).get(table.table_name, [])
        if not requests:
            return
        await asyncio.sleep(0.05 * 2**attempt)  # DynamoDB asks for a pause before the rest
    raise StoreUnavailable(f"{table.endpoint} left {len(requests)} writes unprocessed")


class GroupCommit:
    """
    Requests gathered into calls of up to ``BATCH_SIZE``: ``run(items)``
    makes one call for a batch and returns a result (or an exception) for
    each item. At most ``concurrency`` calls are in flight; while they are,
    requests wait, and each one that returns takes up to ``BATCH_SIZE`` of
    them at once. With a call free, a request waits at most ``window``
    seconds for others to join it. So a quiet process sends each request
    on its own, at once, and a busy one fewer and larger calls: the busier,
    the larger. ``submit`` returns its item's result, or raises.
    """

    def __init__(
        self,
        run: Callable[[list[Any]], Awaitable[list[Any]]],
        *,
        window: float,
        concurrency: int = 4,
    ) -> None:
        self.run = run
        self.window = window
        self.concurrency = concurrency
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[tuple[Any, asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._calls: set[asyncio.Task] = set()

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a store outlives an event loop (one per test): start afresh on this one
            self._loop, self._waiting, self._timer, self._calls = loop, [], None, set()
        done = loop.create_future()
        self._waiting.append((item, done))
        if len(self._waiting) >= BATCH_SIZE:
            self._send()
        elif self._timer is None and len(self._calls) < self.concurrency:
            self._timer = loop.call_later(self.window, self._send)
        return await done

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting and len(self._calls) < self.concurrency:
            batch, self._waiting = self._waiting[:BATCH_SIZE], self._waiting[BATCH_SIZE:]
            task = asyncio.create_task(self._call(batch))
            self._calls.add(task)
            task.add_done_callback(self._returned)

    def _returned(self, task: asyncio.Task) -> None:
        self._calls.discard(task)
        if self._waiting:
            self._send()  # they waited for this call: they go now

    async def _call(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        try:
            results = await self.run([item for item, _ in batch])
        except Exception as error:
            results = [error] * len(batch)
        except BaseException:
            for _, done in batch:
                done.cancel()  # the process is stopping: so are its callers
            raise
        for (_, done), result in zip(batch, results, strict=True):
            if done.done():
                continue  # its caller gave up (cancelled)
            if isinstance(result, BaseException):
                done.set_exception(result)
            else:
                done.set_result(result)


def _puts(table: DynamoDBTable) -> Callable[[list[dict[str, Any]]], Awaitable[list[None]]]:
    """A ``GroupCommit`` run: the items put in one BatchWriteItem."""

    async def run(items: list[dict[str, Any]]) -> list[None]:
        await _batch_write(table, [{"PutRequest": {"Item": item}} for item in items])
        return [None] * len(items)

    return run


class DynamoDBConnectionStore(ConnectionStore):
    """
    Live connections in DynamoDB, and the heartbeats of the server processes
    holding them (table ``instances_table_name``, default ``ChatInstances``).
    ``register_window``: seconds a new connection's write waits for others
    to share its BatchWriteItem (default 0.005; 0 writes each at the next
    turn of the event loop, still gathered). Other options as
    ``DynamoDBTable`` takes them.
    """

    def __init__(self, **options: Any) -> None:
        options = dict(options)
        heartbeat_timeout = options.pop("heartbeat_timeout", 2.0)
        register_window = options.pop("register_window", 0.005)
        if not isinstance(heartbeat_timeout, int | float) or heartbeat_timeout <= 0:
            raise ImproperlyConfigured(
                f"CHAT_CONNECTION_STORE['OPTIONS']['heartbeat_timeout']={heartbeat_timeout!r}: use seconds above 0."
            )
        if not isinstance(register_window, int | float) or register_window < 0:
            raise ImproperlyConfigured(
                f"CHAT_CONNECTION_STORE['OPTIONS']['register_window']={register_window!r}: use seconds, 0 or more."
            )
        self.table, self.instances_table = _tables(
            "CHAT_CONNECTION_STORE", options, instances_table_name="ChatInstances"
        )
        # New connections are written in groups, up to 25 in one BatchWriteItem.
        self.registrations = GroupCommit(_puts(self.table), window=register_window)
        # Removals ($disconnect, sweeps), up to 25 in one BatchExecuteStatement (see _remove_many).
        self.removals = GroupCommit(self._remove_many, window=register_window)
        # Activity, up to 25 connections in one BatchExecuteStatement (see _touch_many).
        self.touches = GroupCommit(self._touch_many, window=register_window, concurrency=1)
        # Heartbeats go through a client and threads of their own, with one
        # attempt bounded by heartbeat_timeout: bulk work on the shared pool
        # cannot hold one up, and a stuck one frees its thread for the next.
        self.heartbeats = DynamoDBTable(
            **{
                **options,
                "table_name": self.instances_table.table_name,
                "max_workers": 2,
                "connect_timeout": heartbeat_timeout,
                "read_timeout": heartbeat_timeout,
                "max_attempts": 1,
            }
        )

    async def add(self, connection: Connection) -> None:
        try:
            await self.table.call(
                "put_item",
                TableName=self.table.table_name,
                Item=_to_item(connection),
                ConditionExpression="attribute_not_exists(connectionId)",
            )
        except ConditionFailed:
            raise ConnectionExists(connection.connection_id) from None

    async def remove(self, connection_id: str) -> Connection | None:
        return await self.removals.submit(connection_id)

    async def _remove_many(self, connection_ids: list[str]) -> list[Connection | BaseException | None]:
        """
        Up to 25 connections removed in one BatchExecuteStatement: a PartiQL
        DELETE each, returning the item it removed. A connection already gone
        is None, and so is the second of two removals of one in a batch: as
        with one call each, one removal alone finds the item.
        """
        wanted = list(dict.fromkeys(connection_ids))  # a batch may not name an item twice
        statement = f'DELETE FROM "{self.table.table_name}" WHERE connectionId = ? RETURNING ALL OLD *'
        response = await self.table.call(
            "batch_execute_statement",
            Statements=[{"Statement": statement, "Parameters": [{"S": connection_id}]} for connection_id in wanted],
        )
        removed: dict[str, Connection | BaseException | None] = {}
        for connection_id, answer in zip(wanted, response["Responses"], strict=True):
            code = answer.get("Error", {}).get("Code")
            if code is None or code == "ConditionalCheckFailed":
                removed[connection_id] = _from_item(answer["Item"]) if answer.get("Item") else None
            else:
                metrics.DYNAMODB_ERRORS.labels("BatchExecuteStatement", code).inc()
                removed[connection_id] = StoreUnavailable(f"{self.table.endpoint} refused a removal: {code}")
        results = []
        for connection_id in connection_ids:
            results.append(removed[connection_id])
            if not isinstance(removed[connection_id], BaseException):
                removed[connection_id] = None
        return results

    async def register(self, connection: Connection) -> None:
        await self.registrations.submit(_to_item(connection))

    async def remove_many(self, connection_ids: list[str]) -> None:
        for start in range(0, len(connection_ids), BATCH_SIZE):
            requests = [
                {"DeleteRequest": {"Key": {"connectionId": {"S": connection_id}}}}
                for connection_id in connection_ids[start : start + BATCH_SIZE]
            ]
            await _batch_write(self.table, requests)

    async def get(self, connection_id: str) -> Connection | None:
        item = await self.table.get_item({"connectionId": {"S": connection_id}})
        return _from_item(item) if item else None

    async def members(self, room: str, *, limit: int = 1000, cursor: str | None = None) -> Page:
        params = {**self._room_query(room), "Limit": limit}
        if start := decode_cursor(cursor):
            params["ExclusiveStartKey"] = start
        response = await self.table.call("query", **params)
        return Page([_from_item(i) for i in response["Items"]], encode_cursor(response.get("LastEvaluatedKey")))

    def _room_query(self, room: str) -> dict[str, Any]:
        """Query parameters for one room's entries in ``room-index``."""
        return {
            "TableName": self.table.table_name,
            "IndexName": ROOM_INDEX,
            "KeyConditionExpression": "#room = :room",
            "ExpressionAttributeNames": {"#room": "room"},
            "ExpressionAttributeValues": {":room": {"S": room}},
        }

    async def scan(self, *, limit: int = 100, cursor: str | None = None) -> Page:
        params: dict[str, Any] = {"TableName": self.table.table_name, "Limit": limit}
        if start := decode_cursor(cursor):
            params["ExclusiveStartKey"] = start
        response = await self.table.call("scan", **params)
        return Page([_from_item(i) for i in response["Items"]], encode_cursor(response.get("LastEvaluatedKey")))

    async def touch(self, connection_id: str, last_active_at: str) -> bool:
        return await self.touches.submit((connection_id, last_active_at))

    async def _touch_many(self, touches: list[tuple[str, str]]) -> list[bool | BaseException]:
        """
        ``lastActiveAt`` of up to 25 connections in one BatchExecuteStatement:
        a PartiQL UPDATE each, which changes only an item that exists (False
        for one that is gone).
        """
        latest = dict(touches)  # one statement per connection: the latest time wins
        statement = f'UPDATE "{self.table.table_name}" SET lastActiveAt = ? WHERE connectionId = ?'
        response = await self.table.call(
            "batch_execute_statement",
            Statements=[
                {"Statement": statement, "Parameters": [{"S": moment}, {"S": connection_id}]}
                for connection_id, moment in latest.items()
            ],
        )
        done: dict[str, bool | BaseException] = {}
        for connection_id, answer in zip(latest, response["Responses"], strict=True):
            code = answer.get("Error", {}).get("Code")
            if code is None or code == "ConditionalCheckFailed":
                done[connection_id] = code is None
            else:
                metrics.DYNAMODB_ERRORS.labels("BatchExecuteStatement", code).inc()
                done[connection_id] = StoreUnavailable(f"{self.table.endpoint} refused a lastActiveAt update: {code}")
        return [done[connection_id] for connection_id, _ in touches]

    async def count(self, room: str, *, limit: int = 10_000) -> int:
        # Query with Select=COUNT reads the room's index entries but returns
        # no items; each page covers up to 1 MB, so a room costs a few calls.
        params = {**self._room_query(room), "Select": "COUNT"}
        total = 0
        while total < limit:
            params["Limit"] = limit - total
            response = await self.table.call("query", **params)
            total += response["Count"]
            if "LastEvaluatedKey" not in response:
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return min(total, limit)

    async def ensure_tables(self) -> list[str]:
        created_instances = await self.instances_table.ensure(
            {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "instanceId", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "instanceId", "KeyType": "HASH"}],
            },
            ttl_attribute=TTL_ATTRIBUTE,
        )
        created = await self.table.ensure(
            {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": "connectionId", "AttributeType": "S"},
                    {"AttributeName": "room", "AttributeType": "S"},
                    {"AttributeName": "connectedAt", "AttributeType": "S"},
                    {"AttributeName": "instanceId", "AttributeType": "S"},
                ],
                "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}],
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": ROOM_INDEX,
                        "KeySchema": [
                            {"AttributeName": "room", "KeyType": "HASH"},
                            {"AttributeName": "connectedAt", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    },
                    {
                        "IndexName": INSTANCE_INDEX,
                        "KeySchema": [{"AttributeName": "instanceId", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    },
                ],
            },
            ttl_attribute=TTL_ATTRIBUTE,
        )
        return [self.table.table_name] * created + [self.instances_table.table_name] * created_instances

    async def ping(self) -> None:
        await self.table.call(
            "get_item",
            TableName=self.table.table_name,
            Key={"connectionId": {"S": "-"}},
            ProjectionExpression="connectionId",
        )

    # --- Server processes ------------------------------------------------------

    async def heartbeat(
        self,
        instance_id: str,
        *,
        beat: int,
        at: float,
        stale_at: float,
        expires_at: int,
        rooms: dict[str, int] | None = None,
    ) -> bool:
        names = {"#ttl": TTL_ATTRIBUTE}
        values = {
            ":beat": {"N": str(beat)},
            ":at": {"N": f"{at:.3f}"},
            ":stale": {"N": f"{stale_at:.3f}"},
            ":expires": {"N": str(expires_at)},
        }
        update = "SET beat = :beat, heartbeatAt = :at, staleAt = :stale, #ttl = :expires"
        if rooms is not None:
            names["#rooms"] = "rooms"
            values[":rooms"] = {"M": {room: {"N": str(count)} for room, count in rooms.items()}}
            update += ", #rooms = :rooms"
        try:
            response = await self.heartbeats.call(
                "update_item",
                TableName=self.heartbeats.table_name,
                Key={"instanceId": {"S": instance_id}},
                UpdateExpression=update + " REMOVE sweptBy, sweptAt",
                ConditionExpression="attribute_not_exists(beat) OR beat < :beat",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
            )
        except ConditionFailed:
            return True  # a later heartbeat landed first: this one is news to no one
        old = response.get("Attributes")
        return old is not None and "sweptBy" not in old

    async def claim_instance(self, instance_id: str, *, sweeper: str, now: float, lapse_before: float) -> bool:
        try:
            await self.instances_table.call(
                "update_item",
                TableName=self.instances_table.table_name,
                Key={"instanceId": {"S": instance_id}},
                UpdateExpression="SET sweptBy = :me, sweptAt = :now",
                ConditionExpression=(
                    "staleAt < :now AND (attribute_not_exists(sweptBy) OR sweptBy = :me OR sweptAt < :lapse)"
                ),
                ExpressionAttributeValues={
                    ":me": {"S": sweeper},
                    ":now": {"N": f"{now:.3f}"},
                    ":lapse": {"N": f"{lapse_before:.3f}"},
                },
            )
        except ConditionFailed:
            return False  # refreshed meanwhile, gone, or another sweeper's
        return True

    async def instance(self, instance_id: str) -> Instance | None:
        item = await self.instances_table.get_item({"instanceId": {"S": instance_id}})
        return _instance(item) if item else None

    async def instances(self) -> list[Instance]:
        found: list[Instance] = []
        params: dict[str, Any] = {"TableName": self.instances_table.table_name}
        for _ in range(1000):
            response = await self.instances_table.call("scan", **params)
            found += [_instance(item) for item in response["Items"]]
            if "LastEvaluatedKey" not in response:
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found

    async def forget_instance(self, instance_id: str, *, stale_before: float | None = None) -> bool:
        params: dict[str, Any] = {}
        if stale_before is not None:
            params = {
                "ConditionExpression": "staleAt < :before",
                "ExpressionAttributeValues": {":before": {"N": f"{stale_before:.3f}"}},
            }
        try:
            response = await self.instances_table.call(
                "delete_item",
                TableName=self.instances_table.table_name,
                Key={"instanceId": {"S": instance_id}},
                ReturnValues="ALL_OLD",
                **params,
            )
        except ConditionFailed:
            return False  # it beat again: alive after all
        return "Attributes" in response

    async def held_by(self, instance_id: str) -> list[str]:
        items, _ = await _query_all(
            self.table,
            {
                "IndexName": INSTANCE_INDEX,
                "KeyConditionExpression": "instanceId = :instance",
                "ExpressionAttributeValues": {":instance": {"S": instance_id}},
            },
            limit=1_000_000,
        )
        return [item["connectionId"]["S"] for item in items]


def _instance(item: dict[str, Any]) -> Instance:
    return Instance(
        item["instanceId"]["S"],
        float(item["heartbeatAt"]["N"]),
        float(item["staleAt"]["N"]),
        swept_by=item.get("sweptBy", {}).get("S", ""),
        swept_at=float(item.get("sweptAt", {}).get("N", 0)),
        rooms={room: int(count["N"]) for room, count in item.get("rooms", {}).get("M", {}).items()},
        beat=int(item.get("beat", {}).get("N", 0)),
    )


_MESSAGE_FIELDS = ("room", "id", "connectionId", "name", "message", "sentAt")
ID_INDEX = "id-index"


class DynamoDBMessageStore(MessageStore):
    """
    Room history in DynamoDB: table ``ChatMessages`` (name from settings),
    partition key ``room``, sort key ``seq`` (a number), local secondary
    index ``id-index`` (``room``, ``id``) for cursors given as ids, TTL on
    ``expiresAt``. Every read is a Query or GetItem on one room, read
    consistently.

    Table ``rooms_table_name`` (default ``ChatRooms``, partition key
    ``key``) holds each room's seq counter (``seq#<room>``, an atomic ADD:
    one seq per call, never twice, whatever restarts) and, until they
    expire, the sends a clientMessageId has claimed (``send#<hash>``).

    ``append_window``: seconds a message's write waits for others (any
    room's) to share its BatchWriteItem (default 0.005; up to 25 a call).
    Other options as ``DynamoDBTable`` takes them.
    """

    def __init__(self, **options: Any) -> None:
        options = dict(options)
        append_window = options.pop("append_window", 0.005)
        if not isinstance(append_window, int | float) or append_window < 0:
            raise ImproperlyConfigured(
                f"CHAT_MESSAGE_STORE['OPTIONS']['append_window']={append_window!r}: use seconds, 0 or more."
            )
        self.table, self.rooms_table = _tables("CHAT_MESSAGE_STORE", options, rooms_table_name="ChatRooms")
        # Messages and events are written in groups, up to 25 in one BatchWriteItem, whatever their rooms.
        self.appends = GroupCommit(_puts(self.table), window=append_window)
        # Seqs, for up to 25 rooms in one BatchExecuteStatement (see _next_seqs).
        self.seqs = GroupCommit(self._next_seqs, window=append_window)
        self._counters: dict[str, None] = {}  # rooms whose counters exist, oldest first

    async def next_seq(self, room: str) -> int:
        return await self.seqs.submit(room)

    async def _next_seqs(self, rooms: list[str]) -> list[int | BaseException]:
        """
        A seq for each of ``rooms``, in order (a room named twice gets two,
        the first the lower). The rooms whose counters this process has
        seen: one PartiQL UPDATE a room, adding how many it needs, all in
        one BatchExecuteStatement. The others (a room's first message here),
        and any whose statement failed (its counter did not exist), each by
        an UpdateItem ``ADD``, which creates the counter; all side by side.
        """
        wanted: dict[str, int] = {}
        for room in rooms:
            wanted[room] = wanted.get(room, 0) + 1
        known = [room for room in wanted if room in self._counters]
        last: dict[str, int | BaseException] = {}

        async def add(room: str) -> None:
            try:
                last[room] = await self._add_seqs(room, wanted[room])
            except StoreError as error:
                last[room] = error

        async def batch() -> None:
            statement = f'UPDATE "{self.rooms_table.table_name}" SET seq = seq + ? WHERE "key" = ? RETURNING ALL NEW *'
            response = await self.rooms_table.call(
                "batch_execute_statement",
                Statements=[
                    {"Statement": statement, "Parameters": [{"N": str(wanted[room])}, {"S": f"seq#{room}"}]}
                    for room in known
                ],
            )
            failed = []
            for room, answer in zip(known, response["Responses"], strict=True):
                if "Item" in answer:
                    last[room] = int(answer["Item"]["seq"]["N"])
                else:
                    failed.append(room)
            await asyncio.gather(*(add(room) for room in failed))

        await asyncio.gather(*([batch()] if known else []), *(add(room) for room in wanted if room not in known))
        for room, top in last.items():
            if not isinstance(top, BaseException):
                self._counter_seen(room)
        seqs: list[int | BaseException] = []
        given: dict[str, int] = {}
        for room in rooms:
            top = last[room]
            if isinstance(top, BaseException):
                seqs.append(top)
                continue
            given[room] = given.get(room, 0) + 1
            seqs.append(top - wanted[room] + given[room])
        return seqs

    def _counter_seen(self, room: str) -> None:
        self._counters[room] = None
        if len(self._counters) > COUNTERS_KEPT:
            del self._counters[next(iter(self._counters))]

    async def _add_seqs(self, room: str, count: int) -> int:
        """The last of ``count`` seqs taken for ``room`` by one UpdateItem (creating its counter if need be)."""
        response = await self.rooms_table.call(
            "update_item",
            TableName=self.rooms_table.table_name,
            Key={"key": {"S": f"seq#{room}"}},
            UpdateExpression="ADD seq :count",
            ExpressionAttributeValues={":count": {"N": str(count)}},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["seq"]["N"])

    async def append(self, message: dict[str, Any], *, expires_at: int) -> None:
        if protocol.is_message(message):
            item = {field: {"S": message[field]} for field in _MESSAGE_FIELDS}
            for field in ("clientMessageId", "sender"):
                if message.get(field):
                    item[field] = {"S": message[field]}
            if message.get("replyTo"):
                item["replyTo"] = {"S": json.dumps(message["replyTo"], ensure_ascii=False)}
            if message.get("attachments"):
                kept = [{k: a[k] for k in ("key", "name", "size", "type")} for a in message["attachments"]]
                item["attachments"] = {"S": json.dumps(kept, ensure_ascii=False)}
            # Empty maps, so that a reaction can ADD to a set inside them.
            item["reactions"] = {"M": {}}
            item["reactionsBy"] = {"M": {}}
            item["version"] = {"N": str(message.get("version", 1))}
        else:  # an event about a message: kept as it was sent, for recovery to replay
            item = {"room": {"S": message["room"]}, "event": {"S": json.dumps(message, ensure_ascii=False)}}
        item["seq"] = {"N": str(message["seq"])}
        item[TTL_ATTRIBUTE] = {"N": str(expires_at)}
        await self.appends.submit(item)

    async def get(self, room: str, seq: int) -> dict[str, Any] | None:
        item = await self.table.get_item(self._key(room, seq))
        return _message(item) if item else None

    @staticmethod
    def _key(room: str, seq: int) -> dict[str, Any]:
        return {"room": {"S": room}, "seq": {"N": str(seq)}}

    async def find(self, room: str, message_id: str) -> dict[str, Any] | None:
        response = await self.table.call(
            "query",
            TableName=self.table.table_name,
            IndexName=ID_INDEX,
            KeyConditionExpression="#room = :room AND #id = :id",
            ExpressionAttributeNames={"#room": "room", "#id": "id"},
            ExpressionAttributeValues={":room": {"S": room}, ":id": {"S": message_id}},
            Limit=1,
            ConsistentRead=True,
        )
        if not response["Items"]:
            return None
        return await self.get(room, int(response["Items"][0]["seq"]["N"]))

    async def _change(self, room: str, seq: int, update: str, condition: str, **expression: Any) -> dict[str, Any]:
        """One conditional UpdateItem that counts the message's version up; the message now."""
        names = {"#v": "version", "#id": "id", "#del": "deleted", **expression.pop("names", {})}
        values = {":one": {"N": "1"}, **expression.pop("values", {})}
        response = await self.table.call(
            "update_item",
            TableName=self.table.table_name,
            Key=self._key(room, seq),
            UpdateExpression=f"SET #v = if_not_exists(#v, :one) + :one{update}",
            ConditionExpression=f"attribute_exists(#id) AND attribute_not_exists(#del){condition}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return _message(response["Attributes"])

    async def react(self, room: str, seq: int, *, emoji: str, who: str, limit: int) -> tuple[dict[str, Any], bool]:
        names = {"#r": "reactions", "#b": "reactionsBy", "#e": emoji, "#w": who}
        # Read, then write on the condition that what was read still holds; another
        # person's reaction meanwhile does not matter, this person's own (another tab) does.
        for _ in range(5):
            item = await self.table.get_item(self._key(room, seq))
            if item is None or "id" not in item or "deleted" in item:
                raise UnknownMessage(f"no message {seq} in {room}")
            if "reactions" not in item or "reactionsBy" not in item:  # stored before reactions existed
                await self.table.call(
                    "update_item",
                    TableName=self.table.table_name,
                    Key=self._key(room, seq),
                    UpdateExpression="SET #r = if_not_exists(#r, :empty), #b = if_not_exists(#b, :empty)",
                    ExpressionAttributeNames={"#r": "reactions", "#b": "reactionsBy"},
                    ExpressionAttributeValues={":empty": {"M": {}}},
                )
                continue
            reactors = item["reactions"]["M"].get(emoji, {}).get("SS", [])
            mine = int(item["reactionsBy"]["M"].get(who, {}).get("N", "0"))
            added = who not in reactors
            if added and mine >= limit:
                raise TooManyReactions(f"{limit} reactions on message {seq} in {room}")
            values = {":who": {"SS": [who]}, ":w": {"S": who}}
            if added:
                update = " ADD #r.#e :who, #b.#w :one"
                condition = " AND NOT contains(#r.#e, :w) AND (attribute_not_exists(#b.#w) OR #b.#w < :limit)"
                values[":limit"] = {"N": str(limit)}
            else:
                update = " ADD #b.#w :less DELETE #r.#e :who"
                condition = " AND contains(#r.#e, :w)"
                values[":less"] = {"N": "-1"}
            try:
                return await self._change(room, seq, update, condition, names=names, values=values), added
            except ConditionFailed:
                continue
        raise StoreError(f"the reactions to message {seq} in {room} kept changing")

    async def edit(self, room: str, seq: int, *, text: str, edited_at: str) -> dict[str, Any]:
        try:
            return await self._change(
                room,
                seq,
                ", #m = :text, #at = :at",
                "",
                names={"#m": "message", "#at": "editedAt"},
                values={":text": {"S": text}, ":at": {"S": edited_at}},
            )
        except ConditionFailed:
            raise UnknownMessage(f"no message {seq} in {room}") from None

    async def delete(self, room: str, seq: int) -> dict[str, Any] | None:
        try:
            return await self._change(
                room,
                seq,
                ", #del = :yes REMOVE #m, #r, #b, #reply, #at, #files",
                "",
                names={
                    "#m": "message",
                    "#r": "reactions",
                    "#b": "reactionsBy",
                    "#reply": "replyTo",
                    "#at": "editedAt",
                    "#files": "attachments",
                },
                values={":yes": {"BOOL": True}},
            )
        except ConditionFailed:
            item = await self.table.get_item(self._key(room, seq))
            if item is not None and "deleted" in item:
                return None
            raise UnknownMessage(f"no message {seq} in {room}") from None

    async def seq_by_id(self, room: str, message_id: str, *, inclusive: bool) -> int:
        response = await self.table.call(
            "query",
            TableName=self.table.table_name,
            IndexName=ID_INDEX,
            KeyConditionExpression=f"#room = :room AND #id {'<=' if inclusive else '<'} :id",
            ExpressionAttributeNames={"#room": "room", "#id": "id"},
            ExpressionAttributeValues={":room": {"S": room}, ":id": {"S": message_id}},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response["Items"]
        return int(items[0]["seq"]["N"]) if items else 0

    async def latest(self, room: str, *, limit: int) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        items, _ = await _query_all(self.table, self._range(room), limit=limit)
        if items:  # messages have seqs: the room's counter exists, and its next seq can go in a batch
            self._counter_seen(room)
        return [_message(i) for i in reversed(items)]

    async def after(self, room: str, seq: int, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
        items, more = await _query_all(self.table, self._range(room, ">", seq), limit=limit)
        return [_message(i) for i in items], more

    async def before(self, room: str, seq: int, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
        items, more = await _query_all(self.table, self._range(room, "<", seq), limit=limit)
        return [_message(i) for i in reversed(items)], more

    @staticmethod
    def _range(room: str, op: str | None = None, seq: int = 0) -> dict[str, Any]:
        """Query parameters: newest first, unless reading forward from a seq; read consistently."""
        params: dict[str, Any] = {
            "KeyConditionExpression": "#room = :room",
            "ExpressionAttributeNames": {"#room": "room"},
            "ExpressionAttributeValues": {":room": {"S": room}},
            "ScanIndexForward": op == ">",
            "ConsistentRead": True,
        }
        if op:
            params["KeyConditionExpression"] += f" AND #seq {op} :seq"
            params["ExpressionAttributeNames"]["#seq"] = "seq"
            params["ExpressionAttributeValues"][":seq"] = {"N": str(seq)}
        return params

    async def claim_send(self, key: str, *, expires_at: int) -> int | None:
        now = time.time()
        try:
            await self.rooms_table.call(
                "put_item",
                TableName=self.rooms_table.table_name,
                Item={
                    "key": {"S": f"send#{key}"},
                    "seq": {"N": str(SEND_PENDING)},
                    "claimedAt": {"N": f"{now:.3f}"},
                    TTL_ATTRIBUTE: {"N": str(expires_at)},
                },
                # DynamoDB's TTL deletes late: an expired claim counts as none, and so
                # does one that never got its seq (its send failed) after a while.
                ConditionExpression=(
                    "attribute_not_exists(#key) OR #ttl < :now OR (seq = :pending AND claimedAt < :stale)"
                ),
                ExpressionAttributeNames={"#key": "key", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now))},
                    ":pending": {"N": str(SEND_PENDING)},
                    ":stale": {"N": f"{now - PENDING_SEND_LAPSE:.3f}"},
                },
            )
        except ConditionFailed:
            item = await self.rooms_table.get_item({"key": {"S": f"send#{key}"}})
            return int(item["seq"]["N"]) if item else SEND_PENDING
        return None

    async def claimed(self, key: str) -> bool:
        item = await self.rooms_table.get_item({"key": {"S": f"send#{key}"}})
        return item is not None and int(item[TTL_ATTRIBUTE]["N"]) >= int(time.time())

    async def settle_send(self, key: str, seq: int) -> None:
        await self.rooms_table.call(
            "update_item",
            TableName=self.rooms_table.table_name,
            Key={"key": {"S": f"send#{key}"}},
            UpdateExpression="SET seq = :seq",
            ExpressionAttributeValues={":seq": {"N": str(seq)}},
        )

    async def ensure_tables(self) -> list[str]:
        created_rooms = await self.rooms_table.ensure(
            {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "key", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "key", "KeyType": "HASH"}],
            },
            ttl_attribute=TTL_ATTRIBUTE,
        )
        created = await self.table.ensure(
            {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": "room", "AttributeType": "S"},
                    {"AttributeName": "seq", "AttributeType": "N"},
                    {"AttributeName": "id", "AttributeType": "S"},
                ],
                "KeySchema": [
                    {"AttributeName": "room", "KeyType": "HASH"},
                    {"AttributeName": "seq", "KeyType": "RANGE"},
                ],
                "LocalSecondaryIndexes": [
                    {
                        "IndexName": ID_INDEX,
                        "KeySchema": [
                            {"AttributeName": "room", "KeyType": "HASH"},
                            {"AttributeName": "id", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    }
                ],
            },
            ttl_attribute=TTL_ATTRIBUTE,
        )
        return [self.table.table_name] * created + [self.rooms_table.table_name] * created_rooms


def _message(item: dict[str, Any]) -> dict[str, Any]:
    """A stored item as a frame: a message in its current state, or an event as it was sent."""
    if "event" in item:
        return json.loads(item["event"]["S"])
    version = int(item.get("version", {}).get("N", "1"))
    sender = item.get("sender", {}).get("S")
    fields = {field: item[field]["S"] for field in _MESSAGE_FIELDS if field in item}
    if "deleted" in item:
        return protocol.tombstone({**fields, "seq": int(item["seq"]["N"]), "sender": sender}, version=version)
    reactions = {emoji: len(who["SS"]) for emoji, who in item.get("reactions", {}).get("M", {}).items() if "SS" in who}
    return protocol.message_frame(
        message_id=fields["id"],
        seq=int(item["seq"]["N"]),
        room=fields["room"],
        connection_id=fields["connectionId"],
        name=fields["name"],
        text=fields["message"],
        sent_at=fields["sentAt"],
        client_message_id=item.get("clientMessageId", {}).get("S"),
        sender=sender,
        reply_to=json.loads(item["replyTo"]["S"]) if "replyTo" in item else None,
        attachments=json.loads(item["attachments"]["S"]) if "attachments" in item else None,
        reactions=reactions,
        version=version,
        edited_at=item.get("editedAt", {}).get("S"),
    )


class DynamoDBModerationStore(ModerationStore):
    """
    Moderation in the ``ChatRooms`` table (name from settings), beside the
    seq counters: ``rules#<room>`` holds a room's ``slowMode``, ``locked``
    and ``mutes`` (person key -> ``{name, until}``); ``bans`` holds every
    ban the same way; ``turn#<room>#<sender>`` the time of a person's last
    send in a room in slow mode (expiring by TTL).
    """

    def __init__(self, **options: Any) -> None:
        (self.table,) = _tables("CHAT_MODERATION_STORE", dict(options))
        # Each process reads a room's rules every few seconds while it serves the room:
        # the reads of many rooms go together, up to 25 in one BatchGetItem.
        self.reads = GroupCommit(self._get_many, window=0.005)

    def _key(self, key: str) -> dict[str, Any]:
        return {"key": {"S": key}}

    async def rules(self, room: str) -> RoomRules:
        return _rules(await self.reads.submit(f"rules#{room}") or {})

    async def _get_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        """The items of ``keys`` (None where there is none), read consistently in one BatchGetItem."""
        found: dict[str, dict[str, Any]] = {}
        wanted = [self._key(key) for key in dict.fromkeys(keys)]
        for attempt in range(BATCH_ATTEMPTS):
            response = await self.table.call(
                "batch_get_item", RequestItems={self.table.table_name: {"Keys": wanted, "ConsistentRead": True}}
            )
            for item in response.get("Responses", {}).get(self.table.table_name, []):
                found[item["key"]["S"]] = item
            wanted = response.get("UnprocessedKeys", {}).get(self.table.table_name, {}).get("Keys", [])
            if not wanted:
                return [found.get(key) for key in keys]
            await asyncio.sleep(0.05 * 2**attempt)  # DynamoDB asks for a pause before the rest
        raise StoreUnavailable(f"{self.table.endpoint} left {len(wanted)} reads unprocessed")

    async def set_rules(self, room: str, *, slow_mode: int | None = None, locked: bool | None = None) -> RoomRules:
        sets, values = ["#updated = :now"], {":now": {"N": f"{time.time():.3f}"}}
        if slow_mode is not None:
            sets.append("slowMode = :slow")
            values[":slow"] = {"N": str(slow_mode)}
        if locked is not None:
            sets.append("locked = :locked")
            values[":locked"] = {"BOOL": locked}
        response = await self.table.call(
            "update_item",
            TableName=self.table.table_name,
            Key=self._key(f"rules#{room}"),
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames={"#updated": "updatedAt"},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return _rules(response["Attributes"])

    async def _add(self, item_key: str, keys: list[str], name: str, until: float) -> None:
        # The map first (a path inside it cannot be set in the same expression that makes it).
        await self.table.call(
            "update_item",
            TableName=self.table.table_name,
            Key=self._key(item_key),
            UpdateExpression="SET #people = if_not_exists(#people, :empty)",
            ExpressionAttributeNames={"#people": "people"},
            ExpressionAttributeValues={":empty": {"M": {}}},
        )
        # Ended entries go in the same write, so the item does not grow with every mute or ban ever made.
        now = time.time()
        ended = [k for k, e in _people(await self.table.get_item(self._key(item_key)) or {}).items() if e.until <= now]
        ended = [key for key in ended if key not in keys][:50]
        entry = {"M": {"name": {"S": name}, "until": {"N": f"{until:.3f}"}}}
        names = {"#people": "people", **{f"#k{i}": key for i, key in enumerate(keys)}}
        names.update({f"#e{i}": key for i, key in enumerate(ended)})
        update = "SET " + ", ".join(f"#people.#k{i} = :entry" for i in range(len(keys)))
        if ended:
            update += " REMOVE " + ", ".join(f"#people.#e{i}" for i in range(len(ended)))
        await self.table.call(
            "update_item",
            TableName=self.table.table_name,
            Key=self._key(item_key),
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":entry": entry},
        )

    async def _remove(self, item_key: str, name: str) -> bool:
        item = await self.table.get_item(self._key(item_key))
        people = _people(item or {})
        keys = [key for key, entry in people.items() if entry.name.casefold() == name.casefold()]
        if not keys:
            return False
        await self.table.call(
            "update_item",
            TableName=self.table.table_name,
            Key=self._key(item_key),
            UpdateExpression="REMOVE " + ", ".join(f"#people.#k{i}" for i in range(len(keys))),
            ExpressionAttributeNames={"#people": "people", **{f"#k{i}": key for i, key in enumerate(keys)}},
        )
        return True

    async def mute(self, room: str, keys: list[str], *, name: str, until: float) -> None:
        await self._add(f"rules#{room}", keys, name, until)

    async def unmute(self, room: str, name: str) -> bool:
        return await self._remove(f"rules#{room}", name)

    async def bans(self) -> dict[str, Mute]:
        return _people(await self.table.get_item(self._key("bans")) or {})

    async def ban(self, keys: list[str], *, name: str, until: float) -> None:
        await self._add("bans", keys, name, until)

    async def unban(self, name: str) -> bool:
        return await self._remove("bans", name)

    async def take_turn(self, room: str, who: str, *, seconds: int, now: float) -> float | None:
        key = self._key(f"turn#{room}#{who}")
        try:
            await self.table.call(
                "put_item",
                TableName=self.table.table_name,
                Item={**key, "at": {"N": f"{now:.3f}"}, TTL_ATTRIBUTE: {"N": str(int(now + seconds + 60))}},
                ConditionExpression="attribute_not_exists(#at) OR #at <= :since",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={":since": {"N": f"{now - seconds:.3f}"}},
            )
        except ConditionFailed:
            item = await self.table.get_item(key)
            return float(item["at"]["N"]) + seconds if item else now
        return None


def _people(item: dict[str, Any]) -> dict[str, Mute]:
    return {
        key: Mute(entry["M"]["name"]["S"], float(entry["M"]["until"]["N"]))
        for key, entry in item.get("people", {}).get("M", {}).items()
    }


def _rules(item: dict[str, Any]) -> RoomRules:
    return RoomRules(
        slow_mode=int(item.get("slowMode", {}).get("N", "0")),
        locked=item.get("locked", {}).get("BOOL", False),
        mutes=_people(item),
    )
