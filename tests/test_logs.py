"""
Log formats: with ``CHAT_LOG_FORMAT=json`` every Python log record is one
JSON object on a line of its own, its ``extra`` ids as keys; the default is
the readable line.
"""

import json
import logging
import os
import re
import subprocess
import sys

from chat.logs import FieldsFormatter, JsonFormatter

from .support.clients import ChatClient
from .support.experiments import eventually
from .support.processes import ROOT

REGISTERED = "connection registered"


def record(message: str, **extra) -> logging.LogRecord:
    made = logging.LogRecord("chat.services.people", logging.INFO, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    return made


def test_a_json_record_has_time_level_logger_message_and_its_fields_as_keys():
    line = JsonFormatter().format(record(REGISTERED, connection_id="Xc3rTq9LPw0kZb1a", room="lobby"))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed == {
        "time": parsed["time"],
        "level": "INFO",
        "logger": "chat.services.people",
        "message": REGISTERED,
        "connection_id": "Xc3rTq9LPw0kZb1a",
        "room": "lobby",
    }
    assert parsed["time"].endswith("+00:00")


def test_a_json_record_carries_its_traceback_on_the_same_line():
    try:
        raise ValueError("the registry said no")
    except ValueError:
        failed = logging.LogRecord("chat", logging.ERROR, __file__, 1, "it failed", (), sys.exc_info())
    line = JsonFormatter().format(failed)
    assert "\n" not in line
    assert "ValueError: the registry said no" in json.loads(line)["exc_info"]


def test_the_readable_line_is_unchanged():
    line = FieldsFormatter().format(record(REGISTERED, connection_id="Xc3rTq9LPw0kZb1a"))
    assert line.endswith(" INFO chat.services.people connection registered connection_id=Xc3rTq9LPw0kZb1a")


async def test_a_server_logging_json_writes_lines_that_parse_with_the_connection_id_as_a_field(start_server, room):
    server = start_server(CHAT_LOG_FORMAT="json", CHAT_LOG_LEVEL="INFO")
    client = await ChatClient.join(server.ws_url, room, "jay")

    def records() -> list[dict]:
        # Every Python record is JSON; daphne's access lines are not records and stay as they are.
        return [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]

    registered = await eventually(
        lambda: [r for r in records() if r["message"] == REGISTERED],
        timeout=10,
        what="the connect's record",
    )
    assert [r["connection_id"] for r in registered] == [client.connection_id]
    [connect] = registered
    assert connect["room"] == room and connect["level"] == "INFO" and connect["logger"] == "chat.services.people"
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records())
    readable = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
    assert not [line for line in server.output().splitlines() if readable.match(line)]
    await client.close()


def test_an_unknown_log_format_stops_the_server_naming_the_choices():
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "CHAT_"))}
    env.update(DJANGO_SETTINGS_MODULE="chatsite.settings", DJANGO_DEBUG="1", CHAT_LOG_FORMAT="xml")
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "CHAT_LOG_FORMAT='xml' is not a log format: use text or json." in done.stderr
