"""
The admin's live connections in this process, on Django's default database
(SQLite): clients connect to a real daphne process, the admin reads them from
DynamoDB Local and reaches them through Redis.
"""

import html
import re

import pytest
from asgiref.sync import async_to_sync
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType

from chat import protocol, services
from chat.models import LiveConnection

from .support.blocking_client import BlockingChatClient
from .support.processes import wait_until

URL = "/admin/chat/liveconnection/"


@pytest.fixture
def staff(db, django_user_model):
    def make(*codenames: str):
        user = django_user_model.objects.create_user(f"staff-{len(codenames)}", password="pw", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="chat", codename__in=codenames))
        return user

    return make


@pytest.fixture
def operator(client, staff):
    client.force_login(staff("view_liveconnection", "disconnect_connection", "message_connection"))
    return client


@pytest.fixture
def people(server, room):
    opened: list[BlockingChatClient] = []

    def join(name: str) -> BlockingChatClient:
        opened.append(BlockingChatClient(server.ws_url, room, name))
        return opened[-1]

    yield join
    for person in opened:
        person.close()


def listed_ids(page) -> list[str]:
    return re.findall(r'data-connection-id="([^"]+)"', page.content.decode())


def test_the_list_pages_through_a_room_by_cursor_showing_everyone_once(operator, people, room, monkeypatch):
    joined = {people(f"p{i}").connection_id for i in range(5)}
    monkeypatch.setattr(admin.site._registry[LiveConnection], "list_per_page", 2)
    seen, url, pages = [], f"{URL}?room={room}", 0
    while url and pages < 10:
        page = operator.get(url)
        assert page.status_code == 200
        assert f'data-room="{room}">5<' in page.content.decode()  # the room's total, on every page
        seen += listed_ids(page)
        pages += 1
        link = re.search(r'<a href="([^"]+)" class="next-page">', page.content.decode())
        url = html.unescape(link.group(1)) if link else None
    assert sorted(seen) == sorted(joined) and pages >= 3


def test_a_name_search_keeps_the_matches_of_the_page_read(operator, people, room):
    ann, _, annika = people("Ann"), people("Bob"), people("Annika")
    page = operator.get(URL, {"room": room, "q": "ann"})
    assert sorted(listed_ids(page)) == sorted([ann.connection_id, annika.connection_id])
    assert "looks only within" in page.content.decode()


def test_the_message_action_sends_a_system_notice_and_logs_who_sent_it(operator, people):
    person = people("Ann")
    form = operator.post(URL, {"action": "message", "_selected_action": person.connection_id})
    assert form.status_code == 200 and b'name="text"' in form.content
    empty = operator.post(URL, {"action": "message", "apply": "1", "_selected_action": person.connection_id})
    assert empty.status_code == 200 and b"This field is required" in empty.content

    done = operator.post(
        URL, {"action": "message", "apply": "1", "_selected_action": person.connection_id, "text": "Maintenance at 6"}
    )
    assert done.status_code == 302
    notice = person.receive()
    assert notice["type"] == protocol.SYSTEM and notice["message"] == "Maintenance at 6"

    entry = LogEntry.objects.get(object_id=person.connection_id)
    assert entry.user.username == "staff-3"
    assert entry.content_type == ContentType.objects.get_for_model(LiveConnection)
    assert "Maintenance at 6" in entry.get_change_message() and "Ann" in entry.object_repr


def test_the_disconnect_action_closes_the_socket(operator, people):
    person, bystander = people("Ann"), people("Bob")
    operator.post(URL, {"action": "disconnect", "_selected_action": person.connection_id})
    code, _ = person.closed_with()
    assert code == protocol.CLOSE_BY_OPERATOR
    leave = bystander.receive_until(lambda frame: frame["type"] == protocol.PRESENCE and frame["event"] == "leave")
    assert leave["connectionId"] == person.connection_id


def test_a_closed_connection_has_no_detail_page(operator, people):
    person = people("Ann")
    assert operator.get(f"{URL}{person.connection_id}/").status_code == 200
    person.close()
    wait_until(
        lambda: async_to_sync(services.connection_get)(connection_id=person.connection_id) is None,
        timeout=10,
        what="registry item removed",
    )
    page = operator.get(f"{URL}{person.connection_id}/", follow=True)
    assert b"is not live" in page.content


def test_staff_need_the_view_permission_and_visitors_must_log_in(client, staff):
    anonymous = client.get(URL)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client.force_login(staff())
    assert client.get(URL).status_code == 403
