"""
The admin's "Rooms" pages against real daphne: two processes share Redis,
DynamoDB Local and one SQLite database; operators log in to the first, the
people they moderate are on the second. Each action needs its own
permission (403 without it, nothing changed, nothing logged), says what it
did, and is in the admin's log with the operator who did it.
"""

import html
import re
import secrets
import uuid

import pytest
import requests

from chat import protocol

from .support.blocking_client import BlockingChatClient
from .support.daphne import DaphneServer
from .support.operators import ServerDatabase, admin_login, new_user
from .support.processes import wait_until

TOKEN = f"token-{uuid.uuid4().hex}"
ROOMS = "/admin/chat/moderatedroom/"
VIEW = "view_moderatedroom"
# Each action, the permission it needs, and the form it posts (``{name}``: a person of the test's own).
ACTIONS = [
    ("slow_mode", "moderate_rooms", {"seconds": "30"}),
    ("lock", "moderate_rooms", {}),
    ("unlock", "moderate_rooms", {}),
    ("mute", "moderate_people", {"name": "{name}", "minutes": "10"}),
    ("unmute", "moderate_people", {"name": "{name}"}),
    ("ban", "moderate_people", {"name": "{name}", "minutes": "10"}),
    ("unban", "moderate_people", {"name": "{name}"}),
    ("delete", "moderate_messages", {"message_id": "{message_id}"}),
]
MODERATE = sorted({permission for _, permission, _ in ACTIONS})


@pytest.fixture(scope="module")
def users():
    """A moderator with everything; staff with one moderation permission each; staff who may only look."""
    return {
        "moderator": new_user("moderator", perms=[VIEW, *MODERATE]),
        **{permission: new_user(permission.replace("_", "-"), perms=[VIEW, permission]) for permission in MODERATE},
        "viewer": new_user("viewer", perms=[VIEW]),
        "connections-only": new_user("connections-only", perms=["view_liveconnection"]),
    }


@pytest.fixture(scope="module")
def database(server_env, users):
    database = ServerDatabase.sqlite()
    try:
        database.prepare(server_env, list(users.values()))
        yield database
    finally:
        database.drop()


@pytest.fixture(scope="module")
def servers(server_env, database):
    # Heartbeats every 2 s: the first process learns soon which rooms the second serves.
    env = {
        **server_env,
        "DATABASE_URL": database.url,
        "CHAT_MANAGEMENT_TOKEN": TOKEN,
        "CHAT_HEARTBEAT_INTERVAL": "2",
    }
    first, second = DaphneServer(env, name="daphne-admin"), DaphneServer(env, name="daphne-people")
    try:
        yield first.start(), second.start()
    finally:
        first.stop()
        second.stop()


@pytest.fixture(scope="module")
def sessions(servers, users):
    """Each user logged in to the first process through the admin's login form."""
    return {key: admin_login(servers[0].url, user) for key, user in users.items()}


@pytest.fixture
def people(servers, room):
    """Chat clients on the second process."""
    opened: list[BlockingChatClient] = []

    def join(name: str, in_room: str | None = None) -> BlockingChatClient:
        opened.append(BlockingChatClient(servers[1].ws_url, in_room or room, name))
        return opened[-1]

    yield join
    for person in opened:
        person.close()


def post(server, session: requests.Session, url: str, action: str, **fields: str) -> requests.Response:
    """POST an action's form as the page does (with the CSRF token); the page it leads to."""
    data = {"csrfmiddlewaretoken": session.cookies["csrftoken"], "action": action, **fields}
    return session.post(server.url + url, data=data, timeout=15)


def notices(page: requests.Response) -> list[str]:
    """The admin's success, warning and error notices on a page."""
    listed = re.search(r'<ul class="messagelist">(.*?)</ul>', page.text, re.S)
    found = re.findall(r"<li[^>]*>(.*?)</li>", listed.group(1), re.S) if listed else []
    return [html.unescape(text).strip() for text in found]


def room_state(server, room: str) -> dict:
    """The room's moderation as the ``@rooms`` API reads it (with the management token)."""
    answer = requests.get(f"{server.url}/@rooms/{room}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def logged(database: ServerDatabase, *object_ids: str) -> list[tuple]:
    """(username, object id, model, change message) of the admin's log entries about ``object_ids``, in order."""
    marks = ", ".join("?" * len(object_ids))
    return database.query(
        "SELECT u.username, l.object_id, c.model, l.change_message FROM django_admin_log l"
        " JOIN auth_user u ON u.id = l.user_id JOIN django_content_type c ON c.id = l.content_type_id"
        f" WHERE l.object_id IN ({marks}) ORDER BY l.id",
        *object_ids,
    )


def row_of(page: str, room: str) -> str | None:
    """The Rooms page's row of ``room`` (its HTML), if listed."""
    found = re.search(rf'<tr class="room" data-room="{re.escape(room)}">(.*?)</tr>', page, re.S)
    return found.group(1) if found else None


def unique_name(prefix: str) -> str:
    """A display name no other test bans (bans hold in every room, and DynamoDB Local is shared)."""
    return f"{prefix}{secrets.token_hex(3)}"


def test_the_rooms_page_lists_rooms_with_people_their_counts_and_moderation(servers, sessions, people, room):
    admin, _ = servers
    moderator = sessions["moderator"]
    people("Ann")
    people("Bob")
    people("Cy", in_room=f"{room}-quiet")
    assert "Muted Ann" in notices(post(admin, moderator, f"{ROOMS}{room}/", "mute", name="Ann", minutes="10"))[0]
    post(admin, moderator, f"{ROOMS}{room}/", "slow_mode", seconds="15")

    def listed() -> tuple[str, str] | None:
        page = moderator.get(admin.url + ROOMS, params={"q": room}, timeout=10)
        assert page.status_code == 200
        busy, quiet = row_of(page.text, room), row_of(page.text, f"{room}-quiet")
        counted = busy and quiet and '"field-count">2<' in busy and '"field-count">1<' in quiet
        return (busy, quiet) if counted else None

    # The first process learns of the second's rooms from its heartbeats; its directory is cached a few seconds.
    busy, quiet = wait_until(listed, timeout=30, what=f"#{room} listed with 2 people and #{room}-quiet with 1")
    assert f'href="{ROOMS}{room}/"' in busy
    assert '<td class="field-slow_mode">15 s</td>' in busy and '<td class="field-locked">no</td>' in busy
    assert re.search(r'<span class="mute" [^>]*>Ann \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)</span>', busy)
    assert '<td class="field-slow_mode">off</td>' in quiet and '<td class="field-mutes">none</td>' in quiet
    # The search keeps only the rooms whose names contain it.
    page = moderator.get(admin.url + ROOMS, params={"q": f"{room}-quiet"}, timeout=10).text
    assert row_of(page, room) is None and row_of(page, f"{room}-quiet") is not None


def test_the_room_page_shows_its_latest_messages_newest_first_with_tombstones(servers, sessions, people, room):
    admin, _ = servers
    ann = people("Ann")
    first, second = ann.say("first words"), ann.say("second words")
    moderator = sessions["moderator"]
    post(admin, moderator, f"{ROOMS}{room}/", "delete", message_id=first["id"])
    page = moderator.get(f"{admin.url}{ROOMS}{room}/", timeout=10).text
    rows = re.findall(r'<tr class="message( deleted)?" data-message-id="([^"]+)">(.*?)</tr>', page, re.S)
    assert [message_id for _, message_id, _ in rows] == [second["id"], first["id"]]
    (_, _, newest), (deleted, _, oldest) = rows
    assert "second words" in newest and 'value="delete"' in newest
    assert deleted and '<em class="tombstone">deleted</em>' in oldest and "first words" not in oldest
    assert 'value="delete"' not in oldest  # nothing left to delete


def test_each_action_is_refused_without_its_permission_and_changes_nothing(servers, sessions, people, room, database):
    admin, _ = servers
    ann, name = people("Ann"), unique_name("Mal")
    message = ann.say("keep me")
    for action, permission, form in ACTIONS:
        fields = {key: value.format(name=name, message_id=message["id"]) for key, value in form.items()}
        lacking = ["viewer", *(other for other in MODERATE if other != permission)]
        for who in lacking:
            refused = post(admin, sessions[who], f"{ROOMS}{room}/", action, **fields)
            assert refused.status_code == 403, (action, who)
        if action in ("ban", "unban"):  # the Rooms page takes the bans too
            assert post(admin, sessions["viewer"], ROOMS, action, **fields).status_code == 403
    assert room_state(admin, room) == {"room": room, "slowModeSeconds": 0, "locked": False, "mutes": []}
    page = sessions["moderator"].get(f"{admin.url}{ROOMS}{room}/", timeout=10).text
    assert "keep me" in page and 'class="message deleted"' not in page and f'data-name="{name}"' not in page
    assert ann.say("still here")["type"] == protocol.MESSAGE  # not muted, not banned, the room not locked
    assert logged(database, room, f"ban:{name}") == []


def test_staff_need_the_view_permission_and_visitors_must_log_in(servers, sessions, room):
    admin, _ = servers
    staff = sessions["connections-only"]
    for url in (ROOMS, f"{ROOMS}{room}/"):
        assert staff.get(admin.url + url, timeout=10).status_code == 403
        anonymous = requests.get(admin.url + url, timeout=10, allow_redirects=False)
        assert anonymous.status_code == 302 and "/admin/login/" in anonymous.headers["Location"]
    assert post(admin, staff, f"{ROOMS}{room}/", "lock").status_code == 403
    # Looking is enough to see the state, without the forms that change it.
    page = sessions["viewer"].get(f"{admin.url}{ROOMS}{room}/", timeout=10)
    assert page.status_code == 200 and 'name="action"' not in page.text
    assert 'class="room-moderation"' not in staff.get(f"{admin.url}/admin/chat/liveconnection/", timeout=10).text


def test_each_action_is_done_announced_and_logged_with_its_operator(servers, sessions, people, room, database):
    admin, _ = servers
    url = f"{ROOMS}{room}/"
    name = unique_name("Mal")
    ann, banned = people("Ann"), people(name)
    rude = banned.say("something rude")
    # Each by the staff member holding just that permission.
    rooms, persons, messages = (sessions[p] for p in ("moderate_rooms", "moderate_people", "moderate_messages"))

    assert notices(post(admin, rooms, url, "slow_mode", seconds="30")) == [f"#{room}: slow mode 30 s."]
    assert room_state(admin, room)["slowModeSeconds"] == 30
    assert "is locked" in notices(post(admin, rooms, url, "lock"))[0]
    assert room_state(admin, room)["locked"] is True
    assert "is unlocked" in notices(post(admin, rooms, url, "unlock"))[0]
    assert room_state(admin, room)["locked"] is False
    assert notices(post(admin, persons, url, "mute", name="Ann", minutes="10"))[0].startswith(f"Muted Ann in #{room}")
    assert [m["name"] for m in room_state(admin, room)["mutes"]] == ["Ann"]
    assert notices(post(admin, persons, url, "unmute", name="Ann")) == [f"Lifted the mute of Ann in #{room}."]
    assert room_state(admin, room)["mutes"] == []

    assert notices(post(admin, messages, url, "delete", message_id=rude["id"])) == [
        f"Deleted message {rude['id']} in #{room}."
    ]
    deleted = ann.receive_until(lambda frame: frame["type"] == protocol.MESSAGE_DELETED)
    assert deleted["messageId"] == rude["id"]
    (banned_notice,) = notices(post(admin, persons, url, "ban", name=name, minutes="10"))
    assert banned_notice.startswith(f"Banned {name} from every room") and "1 connection(s) closed" in banned_notice
    code, _ = banned.closed_with()
    assert code == protocol.CLOSE_BY_OPERATOR
    assert f'data-name="{name}"' in persons.get(admin.url + ROOMS, timeout=10).text  # listed with the bans
    assert notices(post(admin, persons, ROOMS, "unban", name=name)) == [f"Lifted the ban of {name}."]

    assert logged(database, room, f"ban:{name}") == [
        ("moderate-rooms", room, "moderatedroom", "Set slow mode to 30 s and unlocked."),
        ("moderate-rooms", room, "moderatedroom", "Set slow mode to 30 s and locked."),
        ("moderate-rooms", room, "moderatedroom", "Set slow mode to 30 s and unlocked."),
        ("moderate-people", room, "moderatedroom", "Muted Ann for 600 s."),
        ("moderate-people", room, "moderatedroom", "Lifted the mute of Ann."),
        ("moderate-messages", room, "moderatedroom", f"Deleted message {rude['id']}."),
        ("moderate-people", f"ban:{name}", "liveconnection", f"Banned {name} for 600 s."),
        ("moderate-people", f"ban:{name}", "liveconnection", f"Lifted the ban of {name}."),
    ]


def test_bad_input_and_actions_with_nothing_to_do_are_refused_in_words_and_not_logged(
    servers, sessions, people, room, database
):
    admin, _ = servers
    url, moderator = f"{ROOMS}{room}/", sessions["moderator"]
    message = people("Ann").say("short-lived")
    assert "Nothing done: seconds" in notices(post(admin, moderator, url, "slow_mode", seconds="-1"))[0]
    assert "Nothing done: minutes" in notices(post(admin, moderator, url, "mute", name="Ann", minutes="0"))[0]
    assert "Nothing done: name" in notices(post(admin, moderator, url, "mute", name="", minutes="5"))[0]
    assert notices(post(admin, moderator, url, "unmute", name="Nobody")) == [f"Nobody is muted as Nobody in #{room}."]
    unknown = protocol.new_message_id()
    assert notices(post(admin, moderator, url, "delete", message_id=unknown)) == [f"#{room} has no message {unknown}."]
    assert "not a message id" in notices(post(admin, moderator, url, "delete", message_id="../x"))[0]
    assert "Choose an action" in notices(post(admin, moderator, url, "explode"))[0]
    assert "Choose an action" in notices(post(admin, moderator, ROOMS, "lock"))[0]  # a room's action needs its room
    assert moderator.get(f"{admin.url}{ROOMS}not%20a%20room/", timeout=10).status_code == 404
    assert room_state(admin, room) == {"room": room, "slowModeSeconds": 0, "locked": False, "mutes": []}
    assert logged(database, room) == []
    # Deleting twice: the second says so, and only the first is logged.
    post(admin, moderator, url, "delete", message_id=message["id"])
    assert notices(post(admin, moderator, url, "delete", message_id=message["id"])) == [
        f"Message {message['id']} was deleted already."
    ]
    assert len(logged(database, room)) == 1
