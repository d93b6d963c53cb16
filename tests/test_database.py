"""A server started before `python manage.py migrate` says so, and guests still chat under their names."""

import pytest

from chat.database import unapplied_migrations

from .support.clients import ChatClient
from .support.processes import wait_until

MIGRATE = "python manage.py migrate"
NAME_CHECK_WARNING = "guest names are not checked against registered users"


def lines_with(server, text: str) -> list[str]:
    return [line for line in server.output().splitlines() if text in line]


async def test_an_unmigrated_database_is_named_at_startup_and_guests_keep_their_names(start_server, tmp_path, room):
    # A database file nobody migrated: no django_migrations, no auth_user.
    server = start_server(DATABASE_URL=f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}")
    # Said at startup, before anyone connects.
    wait_until(lambda: lines_with(server, MIGRATE), timeout=15, what="the line naming migrate")

    clients = [await ChatClient.join(server.ws_url, room, "Ann") for _ in range(3)]
    assert [client.name for client in clients] == ["Ann"] * 3
    for client in clients:
        await client.close()

    wait_until(lambda: lines_with(server, NAME_CHECK_WARNING), timeout=10, what="the name-check warning")
    assert len(lines_with(server, MIGRATE)) == 1, server.output()[-3000:]
    assert len(lines_with(server, NAME_CHECK_WARNING)) == 1, server.output()[-3000:]
    assert "Traceback" not in server.output(), server.output()[-3000:]


@pytest.mark.django_db
def test_a_migrated_database_lacks_no_migration():
    assert unapplied_migrations() == []
