"""
The ``@connections`` management API and the admin across server processes:
two daphne processes share Redis, DynamoDB Local and one PostgreSQL
database; clients sit on the second, requests go to the first.
"""

import json
import uuid

import pytest
import requests

from chat import protocol

from .support.blocking_client import BlockingChatClient
from .support.daphne import DaphneServer
from .support.operators import ServerDatabase, admin_login, new_user, session_of
from .support.processes import wait_until

TOKEN = f"token-{uuid.uuid4().hex}"
FRAME_LIMIT = 2048
CONNECTIONS_ADMIN = "/admin/chat/liveconnection/"


@pytest.fixture(scope="module")
def users():
    return {
        "operator": new_user("operator"),
        "watcher": new_user("watcher", perms=["view_liveconnection"]),
        "visitor": new_user("visitor", staff=False, perms=[]),
    }


@pytest.fixture(scope="module")
def database(server_env, users):
    try:
        database = ServerDatabase.postgresql()
    except RuntimeError as error:
        pytest.fail(str(error))
    try:
        database.prepare(server_env, list(users.values()))
        yield database
    finally:
        database.drop()


@pytest.fixture(scope="module")
def servers(server_env, database):
    env = {
        **server_env,
        "DATABASE_URL": database.url,
        "CHAT_MANAGEMENT_TOKEN": TOKEN,
        "CHAT_MAX_FRAME_BYTES": str(FRAME_LIMIT),
    }
    first, second = DaphneServer(env, name="daphne-first"), DaphneServer(env, name="daphne-second")
    try:
        yield first.start(), second.start()
    finally:
        first.stop()
        second.stop()


@pytest.fixture
def client(servers, room):
    """A chat client on the second server."""
    client = BlockingChatClient(servers[1].ws_url, room, "Nadia")
    yield client
    client.close()


def call(server: DaphneServer, method: str, connection_id: str, *, token: str | None = TOKEN, session=None, **kwargs):
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return (session or requests).request(
        method, f"{server.url}/@connections/{connection_id}", headers=headers, timeout=10, **kwargs
    )


def still_open_and_untouched(first: DaphneServer, client: BlockingChatClient) -> None:
    """Nothing reached the client before a marker posted now, and it is still connected."""
    marker = f"marker-{uuid.uuid4().hex}"
    assert call(first, "POST", client.connection_id, data=marker).status_code == 200
    assert client.receive_text() == marker


def listed_ids(html: str) -> list[str]:
    import re

    return re.findall(r'data-connection-id="([^"]+)"', html)


def test_a_client_on_the_second_server_is_listed_by_the_admin_of_the_first(servers, users, client, room):
    first, _ = servers
    admin = admin_login(first.url, users["operator"])
    index = admin.get(f"{first.url}/admin/", timeout=10)
    assert CONNECTIONS_ADMIN in index.text and "Connections" in index.text

    page = admin.get(f"{first.url}{CONNECTIONS_ADMIN}", params={"room": room}, timeout=10)
    assert page.status_code == 200
    assert listed_ids(page.text) == [client.connection_id]
    assert "Nadia" in page.text and "ops-test/1.0" in page.text and "127.0.0.1" in page.text
    assert f'data-room="{room}">1<' in page.text  # the room's total

    by_id = admin.get(f"{first.url}{CONNECTIONS_ADMIN}", params={"q": client.connection_id}, timeout=10)
    assert listed_ids(by_id.text) == [client.connection_id] and "Found by connection id" in by_id.text

    detail = admin.get(f"{first.url}{CONNECTIONS_ADMIN}{client.connection_id}/", timeout=10)
    assert detail.status_code == 200
    assert client.connection_id in detail.text and room in detail.text and "Disconnect" in detail.text


def test_a_post_to_the_first_server_reaches_a_client_on_the_second_unchanged(servers, client):
    body = 'plain text, not JSON: caf\u00e9 \u2713 {"half'
    response = call(servers[0], "POST", client.connection_id, data=body.encode())
    assert response.status_code == 200 and response.content == b""
    assert client.receive_text() == body


def test_get_describes_the_connection_and_then_its_last_activity(servers, client):
    first, _ = servers
    described = call(first, "GET", client.connection_id).json()
    assert set(described) == {"connectedAt", "identity", "lastActiveAt"}
    assert described["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "ops-test/1.0"}
    assert described["connectedAt"].endswith("Z") and described["lastActiveAt"] == described["connectedAt"]

    client.send({"action": protocol.SEND_MESSAGE, "message": "still here"})
    client.receive_until(lambda frame: frame["type"] == protocol.MESSAGE)
    later = wait_until(
        lambda: (
            (now := call(first, "GET", client.connection_id).json())["lastActiveAt"] > described["connectedAt"] and now
        ),
        timeout=10,
        what="lastActiveAt after a message",
    )
    assert later["connectedAt"] == described["connectedAt"]

    # Recorded at most once a minute: a frame right after writes nothing new.
    client.send({"action": protocol.SEND_MESSAGE, "message": "and again"})
    client.receive_until(lambda frame: frame["type"] == protocol.MESSAGE)  # handled after any write
    assert call(first, "GET", client.connection_id).json()["lastActiveAt"] == later["lastActiveAt"]


def test_delete_sent_to_the_first_server_closes_a_client_on_the_second(servers, client):
    first, _ = servers
    response = call(first, "DELETE", client.connection_id)
    assert response.status_code == 204
    code, texts = client.closed_with()
    assert code == protocol.CLOSE_BY_OPERATOR
    notices = [json.loads(text) for text in texts]
    assert [n["type"] for n in notices] == [protocol.SYSTEM] and "operator" in notices[0]["message"]
    wait_until(lambda: call(first, "GET", client.connection_id).status_code == 410, timeout=10, what="connection gone")


def test_a_connection_that_is_not_live_is_gone(servers):
    unknown = f"gone-{uuid.uuid4().hex[:8]}"
    for method in ("GET", "POST", "DELETE"):
        response = call(servers[0], method, unknown, data=b"hello")
        assert response.status_code == 410, method
        assert unknown in response.json()["message"]


def test_a_body_over_the_frame_limit_is_refused_and_not_delivered(servers, client):
    first, _ = servers
    too_large = call(first, "POST", client.connection_id, data=b"x" * (FRAME_LIMIT + 1))
    assert too_large.status_code == 413 and str(FRAME_LIMIT) in too_large.json()["message"]
    assert call(first, "POST", client.connection_id, data=b"y" * FRAME_LIMIT).status_code == 200
    assert client.receive_text() == "y" * FRAME_LIMIT


def test_requests_without_credentials_are_refused(servers, client):
    first, _ = servers
    for method in ("GET", "POST", "DELETE"):
        response = call(first, method, client.connection_id, token=None, data=b"sneaky")
        assert response.status_code == 401, method
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    still_open_and_untouched(first, client)


def test_a_wrong_token_is_refused(servers, client):
    first, _ = servers
    for method in ("GET", "POST", "DELETE"):
        response = call(first, method, client.connection_id, token=TOKEN + "x", data=b"sneaky")
        assert response.status_code == 403, method
    still_open_and_untouched(first, client)


def test_someone_who_is_not_staff_is_refused_by_the_api_and_the_admin(servers, users, client):
    first, _ = servers
    visitor = session_of(users["visitor"])
    for method in ("GET", "POST", "DELETE"):
        response = call(first, method, client.connection_id, token=None, session=visitor, data=b"sneaky")
        assert response.status_code == 403, method
    admin_page = visitor.get(f"{first.url}{CONNECTIONS_ADMIN}", timeout=10, allow_redirects=False)
    assert admin_page.status_code == 302 and "/admin/login/" in admin_page.headers["Location"]
    still_open_and_untouched(first, client)


def test_staff_without_the_permission_can_look_but_not_act(servers, users, client):
    first, _ = servers
    watcher = session_of(users["watcher"])
    assert call(first, "GET", client.connection_id, token=None, session=watcher).status_code == 200
    for method, permission in (("POST", "message_connection"), ("DELETE", "disconnect_connection")):
        response = call(first, method, client.connection_id, token=None, session=watcher, data=b"sneaky")
        assert response.status_code == 403 and permission in response.json()["message"], method

    page = watcher.get(f"{first.url}{CONNECTIONS_ADMIN}", params={"q": client.connection_id}, timeout=10)
    assert listed_ids(page.text) == [client.connection_id] and 'name="action"' not in page.text
    refused = watcher.post(
        f"{first.url}{CONNECTIONS_ADMIN}",
        data={"action": "disconnect", "_selected_action": client.connection_id},
        timeout=10,
    )
    assert refused.status_code == 403
    still_open_and_untouched(first, client)


def test_a_staff_session_must_carry_the_csrf_token(servers, users, client):
    first, _ = servers
    operator = session_of(users["operator"])
    without = call(
        first, "POST", client.connection_id, token=None, session=operator, data=b"forged", headers={"X-CSRFToken": ""}
    )
    assert without.status_code == 403
    assert call(first, "POST", client.connection_id, token=None, session=operator, data=b"genuine").status_code == 200
    assert client.receive_text() == "genuine"


def test_admin_actions_on_the_first_server_reach_a_client_on_the_second_and_are_logged(
    servers, users, client, database
):
    first, _ = servers
    operator = users["operator"]
    admin = admin_login(first.url, operator)
    url = f"{first.url}{CONNECTIONS_ADMIN}"
    csrf = {"csrfmiddlewaretoken": admin.cookies["csrftoken"]}

    form = admin.post(url, data={**csrf, "action": "message", "_selected_action": client.connection_id}, timeout=10)
    assert form.status_code == 200 and 'name="text"' in form.text
    sent = admin.post(
        url,
        data={**csrf, "action": "message", "apply": "1", "_selected_action": client.connection_id, "text": "Back soon"},
        timeout=10,
    )
    assert sent.status_code == 200  # back on the list, after the redirect
    notice = client.receive()
    assert notice["type"] == protocol.SYSTEM and notice["message"] == "Back soon"

    admin.post(url, data={**csrf, "action": "disconnect", "_selected_action": client.connection_id}, timeout=10)
    code, _ = client.closed_with()
    assert code == protocol.CLOSE_BY_OPERATOR

    logged = database.query(
        "SELECT u.username, l.object_id, l.change_message, c.app_label, c.model FROM django_admin_log l"
        " JOIN auth_user u ON u.id = l.user_id JOIN django_content_type c ON c.id = l.content_type_id"
        " WHERE l.object_id = ? ORDER BY l.id",
        client.connection_id,
    )
    assert [(row[0], row[1], row[3], row[4]) for row in logged] == [
        (operator.username, client.connection_id, "chat", "liveconnection")
    ] * 2
    assert "Back soon" in logged[0][2] and "Disconnected" in logged[1][2]
