"""The chat page as Django serves it: its settings, its assets, its policy."""

import json
import re
from html.parser import HTMLParser

import pytest
from django.test import Client, override_settings


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.script_text: dict[str, str] = {}
        self._script_id: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script_id = dict(attrs).get("id") or ""
            self.script_text[self._script_id] = ""

    def handle_data(self, data):
        if self._script_id is not None:
            self.script_text[self._script_id] += data

    def handle_endtag(self, tag):
        if tag == "script":
            self._script_id = None


def page(path: str) -> tuple[Tags, dict]:
    response = Client().get(path)
    assert response.status_code == 200
    tags = Tags()
    tags.feed(response.content.decode())
    return tags, response.headers


@pytest.mark.parametrize(("path", "room"), [("/", "lobby"), ("/chat/team_news-2/", "team_news-2")])
@override_settings(CHAT_MAX_MESSAGE_LENGTH=1234)
def test_the_page_carries_its_room_and_limit_as_json(path, room):
    tags, _ = page(path)
    config = json.loads(tags.script_text["chat-config"])
    assert config["room"] == room
    assert config["maxLength"] == 1234
    assert config["socketPath"] == f"/ws/chat/{room}/"


def test_the_page_has_no_inline_script_and_loads_only_its_own_assets():
    tags, headers = page("/")
    for tag, attrs in tags.tags:
        if tag == "script":
            assert attrs.get("src") or attrs.get("type") == "application/json"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"inline handler {name} on <{tag}>"
            if name in {"src", "href"} and value:
                assert not re.match(r"^(https?:)?//", value), f"remote asset {value}"
    assert ("meta", {"name": "color-scheme", "content": "light dark"}) in tags.tags
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_a_room_name_outside_the_rules_is_not_found():
    assert Client().get("/chat/no%20spaces/").status_code == 404
    assert Client().get("/chat/" + "x" * 65 + "/").status_code == 404
