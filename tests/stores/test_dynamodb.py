"""What only the DynamoDB store does: tables, TTL, indexes, and its failures."""

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from chat.exceptions import StoreUnavailable
from chat.stores import build_connection_store
from chat.stores.dynamodb import INSTANCE_INDEX, ROOM_INDEX, TTL_ATTRIBUTE, DynamoDBConnectionStore
from tests.support.processes import free_port


def store_with(**options) -> DynamoDBConnectionStore:
    config = settings.CHAT_CONNECTION_STORE
    return build_connection_store({**config, "OPTIONS": {**config["OPTIONS"], **options}})


def test_ensure_tables_creates_the_table_with_its_indexes_and_ttl(dynamodb_local, capsys):
    client = dynamodb_local.client()
    store = store_with(table_name="EnsureTablesCheck")
    call_command("ensure_tables")  # the configured table: exists already
    assert "nothing changed" in capsys.readouterr().out
    import asyncio

    assert asyncio.run(store.ensure_tables()) == ["EnsureTablesCheck"]
    table = client.describe_table(TableName="EnsureTablesCheck")["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {ROOM_INDEX, INSTANCE_INDEX}
    ttl = client.describe_time_to_live(TableName="EnsureTablesCheck")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == TTL_ATTRIBUTE
    assert asyncio.run(store.ensure_tables()) == []  # twice changes nothing


async def test_a_missing_table_is_reported_with_the_fix():
    store = store_with(table_name="NoSuchTable")
    with pytest.raises(StoreUnavailable, match="ensure_tables"):
        await store.get("x")


async def test_an_unreachable_endpoint_is_reported_with_its_address():
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = store_with(endpoint_url=endpoint, max_attempts=1)
    with pytest.raises(StoreUnavailable, match=endpoint.replace(".", r"\.")):
        await store.ping()


@pytest.mark.parametrize(
    ("options", "named"),
    [({"table_name": ""}, "table_name"), ({"max_workers": 0}, "max_workers"), ({"colour": "red"}, "colour")],
)
def test_bad_options_fail_at_construction_naming_the_option(options, named):
    with pytest.raises(ImproperlyConfigured, match=named):
        store_with(**options)


def test_a_backend_path_that_does_not_import_is_named():
    with pytest.raises(ImproperlyConfigured, match=r"chat\.stores\.nowhere\.Store"):
        build_connection_store({"BACKEND": "chat.stores.nowhere.Store", "OPTIONS": {}})
