"""
Files and images against moto's S3 server over HTTP, real daphne, Redis
and DynamoDB Local: the server signs an upload only for a valid token and
within the limits, the browser's POST goes to S3, and a message carries
only files that are there, of this room and sender, as they were signed.
moto does not enforce a presigned POST's conditions, so they are proved
by reading the signed policy.
"""

import asyncio
import base64
import json
import secrets

import pytest
import requests
from botocore.exceptions import ClientError

from chat import protocol
from chat.iam import EXAMPLE_UPLOADS_BUCKET as UPLOADS

from .support.clients import ChatClient
from .support.daphne import DaphneServer
from .support.s3 import REGION, S3Server

LIMIT = 64 * 1024
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(scope="module")
def s3():
    server = S3Server().start()
    server.client().create_bucket(Bucket=UPLOADS)
    yield server
    server.stop()


def uploads_env(s3: S3Server, **extra: str) -> dict[str, str]:
    return {
        "CHAT_UPLOADS_BUCKET": UPLOADS,
        "AWS_S3_ENDPOINT_URL": s3.endpoint,
        "AWS_S3_REGION_NAME": REGION,
        "CHAT_MAX_UPLOAD_BYTES": str(LIMIT),
        **extra,
    }


@pytest.fixture(scope="module")
def server(server_env, s3):
    server = DaphneServer({**server_env, **uploads_env(s3)}, name="daphne-uploads").start()
    yield server
    server.stop()


def of_type(kind: str, **fields):
    return lambda f: f["type"] == kind and all(f.get(k) == v for k, v in fields.items())


async def join(server, room, name) -> ChatClient:
    return await ChatClient.join(server.ws_url, room, name, client_id=secrets.token_urlsafe(16))


def sign(server, token, name="photo.png", size=None, kind="image/png") -> requests.Response:
    body = {"token": token, "name": name, "size": len(PNG) if size is None else size, "type": kind}
    return requests.post(f"{server.url}/api/uploads/", json=body, timeout=10)


def upload(signed: dict, content: bytes, kind: str) -> requests.Response:
    """The browser's part: the presigned POST, fields first and the file last."""
    return requests.post(signed["url"], data=signed["fields"], files={"file": ("f", content, kind)}, timeout=10)


def policy(signed: dict) -> dict:
    return json.loads(base64.b64decode(signed["fields"]["policy"]))


async def sent(client: ChatClient, keys: list[str], caption: str = "") -> dict:
    """Send a message with these files: its echo, or the error refusing it."""
    await client.send({"action": "sendMessage", "message": caption, "attachments": [{"key": k} for k in keys]})
    return await client.receive_until(lambda f: f["type"] in (protocol.MESSAGE, protocol.ERROR))


async def test_an_image_goes_straight_to_s3_and_reaches_the_room_with_a_working_url(server, room, s3):
    ann, bob = await join(server, room, "Ann"), await join(server, room, "Bob")
    answer = sign(server, ann.welcome["uploadToken"])
    assert answer.status_code == 201
    signed = answer.json()
    assert signed["key"].startswith(f"uploads/{room}/") and signed["key"].endswith("/photo.png")
    conditions = policy(signed)["conditions"]
    assert {"bucket": UPLOADS} in conditions and {"key": signed["key"]} in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert ["content-length-range", 1, LIMIT] in conditions
    assert {"x-amz-meta-sender": ann.welcome["sender"]} in conditions
    assert upload(signed, PNG, "image/png").status_code in (200, 201, 204)

    message = await sent(ann, [signed["key"]], "look")
    assert message["type"] == protocol.MESSAGE, message
    (attachment,) = message["attachments"]
    assert {k: attachment[k] for k in ("key", "name", "size", "type")} == {
        "key": signed["key"],
        "name": "photo.png",
        "size": len(PNG),
        "type": "image/png",
    }
    seen = await bob.receive_until(of_type(protocol.MESSAGE, id=message["id"]))
    shown = requests.get(seen["attachments"][0]["url"], timeout=10)
    assert shown.status_code == 200 and shown.content == PNG
    assert shown.headers["Content-Type"] == "image/png"
    assert "attachment" not in shown.headers.get("Content-Disposition", "")
    tags = s3.client().get_object_tagging(Bucket=UPLOADS, Key=signed["key"])["TagSet"]
    assert {"Key": "chat-sent", "Value": "yes"} in tags
    # Someone who comes later gets it in the welcome, with a URL of its own that works.
    carol = await join(server, room, "Carol")
    (again,) = [m for m in carol.welcome["history"] if m["id"] == message["id"]]
    assert requests.get(again["attachments"][0]["url"], timeout=10).content == PNG
    await asyncio.gather(ann.close(), bob.close(), carol.close())


async def test_anything_but_a_raster_image_is_a_download(server, room):
    ann = await join(server, room, "Ann")
    signed = sign(
        server, ann.welcome["uploadToken"], name="Report <1>.pdf", size=len(PDF), kind="application/pdf"
    ).json()
    assert signed["key"].endswith("/Report_1_.pdf")
    assert signed["fields"]["Content-Disposition"].startswith("attachment;")
    assert {"Content-Disposition": signed["fields"]["Content-Disposition"]} in policy(signed)["conditions"]
    upload(signed, PDF, "application/pdf")
    message = await sent(ann, [signed["key"]])
    assert message["message"] == "" and message["attachments"][0]["name"] == "Report <1>.pdf"
    fetched = requests.get(message["attachments"][0]["url"], timeout=10)
    assert fetched.content == PDF and fetched.headers["Content-Disposition"].startswith("attachment;")
    await ann.close()


async def test_the_server_refuses_to_sign_in_words(server, room):
    ann = await join(server, room, "Ann")
    token = ann.welcome["uploadToken"]
    cases = [
        (sign(server, token, size=LIMIT + 1), 413, "too_large"),
        (sign(server, token, name="x.svg", kind="image/svg+xml"), 415, "type_not_allowed"),
        (sign(server, token, name="x.html", kind="text/html"), 415, "type_not_allowed"),
        (sign(server, None), 403, "invalid_token"),
        (sign(server, token[:-2] + "xx"), 403, "invalid_token"),
        (sign(server, token, size="big"), 400, "bad_request"),
        (requests.post(f"{server.url}/api/uploads/", data=b"not json", timeout=10), 400, "bad_request"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]) == (status, code)
        assert response.json()["message"].endswith(".")
    await ann.close()


async def test_a_sender_is_limited_to_a_number_of_uploads_a_minute(start_server, s3, room):
    server = start_server(**uploads_env(s3, CHAT_UPLOADS_PER_MINUTE="3"))
    ann = await join(server, room, "Ann")
    statuses = [sign(server, ann.welcome["uploadToken"]).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    await ann.close()


async def test_a_message_carries_only_files_of_its_room_and_sender_as_signed(server, room):
    ann, bob = await join(server, room, "Ann"), await join(server, room, "Bob")
    elsewhere = await join(server, room + "-x", "Ann")
    # A file uploaded for another room.
    other = sign(server, elsewhere.welcome["uploadToken"]).json()
    upload(other, PNG, "image/png")
    assert (await sent(ann, [other["key"]]))["code"] == protocol.INVALID_ATTACHMENT
    # Signed but never uploaded.
    missing = sign(server, ann.welcome["uploadToken"]).json()
    assert (await sent(ann, [missing["key"]]))["code"] == protocol.INVALID_ATTACHMENT
    # Uploaded with another size than the one signed (real S3 would refuse the POST; moto does not).
    wrong = sign(server, ann.welcome["uploadToken"], size=len(PNG)).json()
    upload(wrong, PNG + b"extra", "image/png")
    assert (await sent(ann, [wrong["key"]]))["code"] == protocol.INVALID_ATTACHMENT
    # Someone else's file.
    hers = sign(server, ann.welcome["uploadToken"]).json()
    upload(hers, PNG, "image/png")
    assert (await sent(bob, [hers["key"]]))["code"] == protocol.INVALID_ATTACHMENT
    for malformed in ([], [{"key": 5}], [{"key": hers["key"]}] * 2, [{"key": f"k{i}"} for i in range(11)], "x"):
        await ann.send({"action": "sendMessage", "message": "hi", "attachments": malformed})
        refusal = await ann.receive_until(of_type(protocol.ERROR))
        assert refusal["code"] == protocol.INVALID_ATTACHMENT and refusal["action"] == "sendMessage"
    assert (await sent(ann, [hers["key"]]))["type"] == protocol.MESSAGE  # hers, sent by her
    await asyncio.gather(ann.close(), bob.close(), elsewhere.close())


async def test_deleting_a_message_deletes_its_files(server, room, s3):
    ann = await join(server, room, "Ann")
    signed = sign(server, ann.welcome["uploadToken"]).json()
    upload(signed, PNG, "image/png")
    message = await sent(ann, [signed["key"]])
    await ann.send({"action": "deleteMessage", "messageId": message["id"]})
    await ann.receive_until(of_type(protocol.MESSAGE_DELETED))
    with pytest.raises(ClientError):
        s3.client().head_object(Bucket=UPLOADS, Key=signed["key"])
    bob = await join(server, room, "Bob")
    (tombstone,) = [m for m in bob.welcome["history"] if m["id"] == message["id"]]
    assert tombstone["deleted"] is True and "attachments" not in tombstone
    await asyncio.gather(ann.close(), bob.close())


def test_the_page_admits_the_bucket_for_images_and_the_upload_alone(server, s3):
    policy_header = requests.get(f"{server.url}/", timeout=10).headers["Content-Security-Policy"]
    directives = {part.split()[0]: part.split()[1:] for part in policy_header.split(";") if part.strip()}
    assert s3.endpoint in directives["img-src"] and s3.endpoint in directives["connect-src"]
    for directive in ("script-src", "style-src", "default-src", "font-src"):
        assert s3.endpoint not in directives[directive]


async def test_without_a_bucket_there_is_no_token_and_nothing_is_signed(start_server, room):
    server = start_server()
    ann = await join(server, room, "Ann")
    assert ann.welcome["uploadToken"] is None
    assert sign(server, "anything").status_code == 503
    await ann.close()


async def test_a_request_with_the_session_cookie_needs_the_pages_csrf_token(server, room):
    ann = await join(server, room, "Ann")
    body = {"token": ann.welcome["uploadToken"], "name": "photo.png", "size": len(PNG), "type": "image/png"}
    page = requests.get(f"{server.url}/chat/{room}/", timeout=10)
    csrf = page.cookies["csrftoken"]  # the page hands its script the token to send
    url = f"{server.url}/api/uploads/"
    without = requests.post(url, json=body, cookies={"sessionid": "someone"}, timeout=10)
    assert (without.status_code, without.json()["error"]) == (403, "invalid_token")
    with_token = requests.post(
        url, json=body, cookies={"sessionid": "someone", "csrftoken": csrf}, headers={"X-CSRFToken": csrf}, timeout=10
    )
    assert with_token.status_code == 201
    await ann.close()
