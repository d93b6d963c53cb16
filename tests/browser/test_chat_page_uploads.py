"""
Files and images on the chat page, in Chromium against real daphne servers
with uploads on (moto's S3 server over HTTP, with CORS for the page's origin,
as the page POSTs straight to the bucket): the paperclip, a paste and a drop
put files in the tray, each shows its progress, Send carries them; raster
images show as thumbnails, anything else (SVG and HTML too) only as a
download card; a cancelled or refused upload sends nothing. Every test runs
under the page's Content-Security-Policy and finds no violation.
"""

import contextlib
import re
import struct
import time
import zlib

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Route, expect

from ..support.chat_page import RECORD_VIOLATIONS, WAIT_MS, ChatPage, Relay
from ..support.daphne import DaphneServer
from ..support.s3 import REGION, S3Server
from .conftest import PHONE

UPLOADS = "chat-uploads"  # the bucket bin/run-chat names
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
# Each would run a script if it were ever shown inline (in an <img> an SVG's scripts do not run,
# but in a frame, an <object> or its own tab they would).
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" onload="window.pwned = true; alert(1)">'
    b"<script>window.pwned = true; alert(2)</script><rect width='40' height='40'/></svg>"
)
HTML = b"<!doctype html><title>x</title><script>window.pwned = true; alert(3)</script><p>hello</p>"


def png(width: int, height: int, rgb: tuple[int, int, int] = (75, 68, 214)) -> bytes:
    """A real PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = (b"\x00" + bytes(rgb) * width) * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def a_file(name: str, mime_type: str, content: bytes) -> dict:
    """A file as Playwright's ``set_input_files`` (and ``ChatPage.paste_files``) take it."""
    return {"name": name, "mimeType": mime_type, "buffer": content}


# --- Servers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3():
    server = S3Server().start()
    server.client().create_bucket(Bucket=UPLOADS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def allow_origin(s3):
    """Let one more daphne's pages POST to the bucket and read from it (CORS), as ensure_uploads_bucket does."""
    origins: list[str] = []

    def allow(origin: str) -> None:
        origins.append(origin)
        rule = {"AllowedOrigins": origins, "AllowedMethods": ["POST", "GET"], "AllowedHeaders": ["*"]}
        s3.client().put_bucket_cors(Bucket=UPLOADS, CORSConfiguration={"CORSRules": [rule]})

    return allow


def uploads_env(s3: S3Server, **extra: str) -> dict[str, str]:
    return {"CHAT_UPLOADS_BUCKET": UPLOADS, "AWS_S3_ENDPOINT_URL": s3.endpoint, "AWS_S3_REGION_NAME": REGION, **extra}


@pytest.fixture(scope="module")
def server(server_env, s3, allow_origin):
    """The module's daphne, with uploads on and the default limits."""
    server = DaphneServer({**server_env, **uploads_env(s3)}, name="daphne-uploads").start()
    allow_origin(server.url)
    yield server
    server.stop()


@pytest.fixture
def start_uploads_server(start_server, s3, allow_origin):
    """A daphne of its own with uploads on and other settings (``CHAT_MAX_UPLOAD_BYTES="1000"``)."""

    def start(**env: str) -> DaphneServer:
        server = start_server(**uploads_env(s3, **env))
        allow_origin(server.url)
        return server

    return start


@pytest.fixture
def person(new_context):
    """Open ``room`` as ``name`` in a browser of its own that records policy violations and socket frames."""

    def open_(server: DaphneServer, room: str, name: str, **options) -> tuple[ChatPage, Relay]:
        context = new_context(name=name, **options)
        context.add_init_script(RECORD_VIOLATIONS)
        # Intercept file choosers from the start: Playwright turns that on without waiting, so turned on
        # by ``expect_file_chooser`` itself it may come after the key press that opens one.
        context.on("page", lambda page: page.on("filechooser", lambda chooser: None))
        relay = Relay(context)
        return ChatPage.open(context, server.url, room).wait_online(), relay

    return open_


# --- Checks ------------------------------------------------------------------------


def sends(relay: Relay) -> list[dict]:
    return [frame for frame in relay.sent if frame.get("action") == "sendMessage"]


def assert_clean(*pages: ChatPage) -> None:
    """No policy violation (event or console line), no script error, no dialog."""
    for chat in pages:
        assert chat.policy_violations() == [], chat.policy_violations()
        assert chat.csp_violations() == [], chat.csp_violations()
        assert chat.errors == [] and chat.dialogs == [], (chat.errors, chat.dialogs)


def assert_nothing_inline(chat: ChatPage) -> None:
    """No image, frame, object, embed or SVG anywhere in the conversation; no script of a file ran."""
    found = chat.page.locator("#message-list").locator("img, iframe, object, embed, svg, frame")
    expect(found).to_have_count(0)
    assert chat.page.locator("iframe, object, embed, frame").count() == 0
    assert chat.page.evaluate("typeof window.pwned") == "undefined"


def assert_fits(chat: ChatPage) -> None:
    """Nothing scrolls sideways: neither the page nor the message list."""
    widths = chat.page.evaluate(
        """() => {
            const list = document.getElementById("messages");
            return [document.documentElement.scrollWidth, window.innerWidth, list.scrollWidth, list.clientWidth];
        }"""
    )
    assert widths[0] <= widths[1] and widths[2] <= widths[3], widths


class HeldUploads:
    """Holds every request a page makes to the bucket until ``release``: an upload stays in progress."""

    def __init__(self, chat: ChatPage, s3: S3Server) -> None:
        self.chat = chat
        self.routes: list[Route] = []
        self.pattern = re.compile(re.escape(s3.endpoint) + r"/.*")
        chat.page.route(self.pattern, self._hold)

    def _hold(self, route: Route) -> None:
        self.routes.append(route)

    def wait(self) -> Route:
        """The first request held (a round trip to the page lets Playwright hand it over)."""
        deadline = time.monotonic() + WAIT_MS / 1000
        while not self.routes:
            assert time.monotonic() < deadline, "the upload never reached the bucket"
            self.chat.page.evaluate("0")
        return self.routes[0]

    def release(self) -> None:
        for route in self.routes:
            route.continue_()
        self.chat.page.unroute(self.pattern)

    def drop(self) -> None:
        """Let go of requests the page gave up on (an aborted upload)."""
        for route in self.routes:
            with contextlib.suppress(PlaywrightError):
                route.abort()


# --- Tests -----------------------------------------------------------------------------


def test_an_image_from_the_file_picker_shows_progress_then_a_thumbnail_for_everyone(person, server, s3, room):
    ann, relay = person(server, room, "Ann")
    bob, _ = person(server, room, "Bob")
    image = png(64, 48)
    expect(ann.attach_button).to_be_visible()
    held = HeldUploads(ann, s3)

    ann.file_input.set_input_files(a_file("photo.png", "image/png", image))
    chip = ann.upload_chip("photo.png")
    held.wait()
    expect(chip).to_have_attribute("data-state", "uploading")
    expect(chip.get_by_role("progressbar", name="Uploading photo.png")).to_be_visible()
    expect(chip.get_by_role("button", name="Cancel the upload of photo.png")).to_be_visible()
    expect(chip.locator(".upload-chip-status")).to_have_text(re.compile(r"Uploading… \d+%"))
    ann.composer.fill("look at this")
    expect(ann.send_button).to_be_disabled()  # the message waits for its file

    held.release()
    ann.wait_uploaded("photo.png")
    expect(ann.send_button).to_be_enabled()
    ann.composer.press("Enter")
    expect(ann.upload_chips).to_have_count(0)

    for chat in (ann, bob):
        thumbnail = chat.thumbnail("photo.png")
        chat.wait_image_loaded(thumbnail)
        assert thumbnail.evaluate("image => [image.naturalWidth, image.naturalHeight]") == [64, 48]
        message = chat.message("look at this")
        expect(message.locator(".msg-attachments img")).to_have_count(1)
        link = message.locator("a.attachment-image")
        expect(link).to_have_attribute("target", "_blank")
        expect(link).to_have_attribute("rel", "noopener noreferrer")
        assert link.get_attribute("href") == thumbnail.get_attribute("src")
        assert link.get_attribute("href").startswith(f"{s3.endpoint}/{UPLOADS}/uploads/{room}/")
    expect(ann.message("look at this")).to_have_class(re.compile(r"\bmsg-own\b"))
    expect(bob.page.locator("#announcer")).to_contain_text("Ann: look at this (sent a file: photo.png)")
    # Through the outbox, like any message: one send, with its clientMessageId and the file's key.
    (sent,) = sends(relay)
    assert sent["message"] == "look at this" and re.fullmatch(r"[A-Za-z0-9_-]{22}", sent["clientMessageId"])
    assert len(sent["attachments"]) == 1 and sent["attachments"][0]["key"].startswith(f"uploads/{room}/")
    assert ann.outbox(room) == []
    assert_clean(ann, bob)


def test_an_image_pasted_into_the_composer_is_sent_without_a_caption(person, server, room):
    ann, relay = person(server, room, "Ann")
    bob, _ = person(server, room, "Bob")

    ann.paste_files([a_file("screenshot.png", "image/png", png(20, 30, (200, 40, 40)))])
    ann.wait_uploaded("screenshot.png")
    expect(ann.composer).to_have_value("")  # the image went to the tray, not into the text
    ann.composer.press("Enter")

    for chat in (ann, bob):
        chat.wait_image_loaded(chat.thumbnail("screenshot.png"))
        item = chat.messages.filter(has=chat.page.locator('.msg-attachments img[alt="screenshot.png"]'))
        expect(item).to_have_count(1)
        expect(item.locator(".msg-text")).to_have_count(0)  # no empty paragraph
    expect(bob.page.locator("#announcer")).to_contain_text("Ann sent a file: screenshot.png")
    (sent,) = sends(relay)
    assert sent["message"] == "" and len(sent["attachments"]) == 1 and sent["clientMessageId"]
    assert_clean(ann, bob)


def test_an_image_alone_gets_a_caption_by_an_edit_and_a_delete_takes_it_away(person, server, s3, room):
    ann, _ = person(server, room, "Ann")
    bob, _ = person(server, room, "Bob")
    ann.paste_files([a_file("chart.png", "image/png", png(12, 12))])
    ann.wait_uploaded("chart.png")
    ann.composer.press("Enter")
    bob.wait_image_loaded(bob.thumbnail("chart.png"))

    # Someone who comes later finds it in the welcome's history, with a link that works for them.
    carol, _ = person(server, room, "Carol")
    carol.wait_image_loaded(carol.thumbnail("chart.png"))

    item = ann.messages.filter(has=ann.page.locator('img[alt="chart.png"]'))
    item.hover()
    item.locator(".msg-menu-button").click()
    item.get_by_role("menuitem", name="Edit").click()
    expect(ann.composer).to_have_value("")
    ann.composer.fill("sales by month")
    ann.composer.press("Enter")
    for chat in (ann, bob):
        edited = chat.message("sales by month")
        expect(edited.locator(".msg-edited")).to_have_text("(edited)")
        expect(edited.locator('img[alt="chart.png"]')).to_be_visible()

    (uploaded,) = s3.client().list_objects_v2(Bucket=UPLOADS, Prefix=f"uploads/{room}/")["Contents"]
    ann.delete("sales by month")
    for chat in (ann, bob, carol):
        expect(chat.page.locator("#message-list .msg-tombstone")).to_have_count(1)
        expect(chat.page.locator("#message-list .msg-attachments")).to_have_count(0)
    listed = s3.client().list_objects_v2(Bucket=UPLOADS, Prefix=uploaded["Key"])
    assert listed.get("KeyCount") == 0, listed.get("Contents")  # the server deleted the file too
    assert_clean(ann, bob, carol)


def test_files_dropped_on_the_conversation_show_a_hint_then_go_in_the_tray(person, server, room):
    ann, _ = person(server, room, "Ann")
    bob, _ = person(server, room, "Bob")

    ann.drop_files([a_file("dropped.png", "image/png", png(10, 10))])
    expect(ann.drop_hint).to_be_hidden()
    ann.wait_uploaded("dropped.png")
    ann.composer.fill("dropped in")
    ann.composer.press("Enter")
    bob.wait_image_loaded(bob.thumbnail("dropped.png"))
    expect(bob.message("dropped in")).to_have_count(1)
    assert_clean(ann, bob)


def test_a_pdf_is_a_card_with_its_name_and_size_and_downloads_as_uploaded(person, server, room):
    ann, _ = person(server, room, "Ann")
    bob, _ = person(server, room, "Bob", viewport=PHONE)
    name = "quarterly-report-for-the-whole-team-with-every-figure-2024-final.pdf"

    # By keyboard: from the message box back to the paperclip, which opens the file chooser.
    ann.composer.focus()
    ann.page.keyboard.press("Shift+Tab")
    expect(ann.attach_button).to_be_focused()
    with ann.page.expect_file_chooser() as chooser:
        ann.page.keyboard.press("Enter")
    chooser.value.set_files(a_file(name, "application/pdf", PDF))
    ann.wait_uploaded(name)
    ann.composer.fill("the report")
    ann.composer.press("Enter")

    for chat in (ann, bob):
        card = chat.file_card(name)
        expect(card).to_be_visible()
        expect(card.locator(".attachment-size")).to_have_text(f"{len(PDF)} bytes")
        expect(chat.message("the report").locator("img")).to_have_count(0)
        expect(card.get_by_role("link", name=f"Download {name}")).to_have_attribute("download", name)
    assert_fits(bob)

    with bob.page.expect_download() as download:
        bob.file_card(name).get_by_role("link", name=f"Download {name}").click()
    assert download.value.suggested_filename == name
    assert download.value.path().read_bytes() == PDF
    bob.wait_online()  # the page is still the chat
    assert_clean(ann, bob)


def test_svg_and_html_files_are_only_download_cards_and_nothing_in_them_runs(person, start_uploads_server, room):
    server = start_uploads_server(CHAT_UPLOAD_TYPES="image/png,image/svg+xml,text/html")
    ann, _ = person(server, room, "Ann")
    bob, _ = person(server, room, "Bob")
    ann.file_input.set_input_files(
        [a_file("drawing.svg", "image/svg+xml", SVG), a_file("page.html", "text/html", HTML)]
    )
    ann.wait_uploaded("drawing.svg")
    ann.wait_uploaded("page.html")
    ann.composer.fill("two risky files")
    ann.composer.press("Enter")

    for chat in (ann, bob):
        expect(chat.message("two risky files").locator(".attachment-file")).to_have_count(2)
        expect(chat.file_card("drawing.svg")).to_be_visible()
        expect(chat.file_card("page.html")).to_be_visible()
        assert_nothing_inline(chat)

    # A download, not a page: the file never opens in the chat's tab.
    chat_url = bob.page.url
    for name, content in (("page.html", HTML), ("drawing.svg", SVG)):
        with bob.page.expect_download() as download:
            bob.file_card(name).get_by_role("link", name=f"Download {name}").click()
        assert download.value.path().read_bytes() == content
        assert bob.page.url == chat_url
    bob.wait_online()
    for chat in (ann, bob):
        assert_nothing_inline(chat)
    assert_clean(ann, bob)


def test_a_cancelled_upload_leaves_the_tray_and_sends_nothing(person, server, s3, room):
    ann, relay = person(server, room, "Ann")
    bob, _ = person(server, room, "Bob")
    held = HeldUploads(ann, s3)
    try:
        ann.file_input.set_input_files(a_file("big.zip", "application/zip", bytes(8 * 1024 * 1024)))
        chip = ann.upload_chip("big.zip")
        held.wait()
        expect(chip).to_have_attribute("data-state", "uploading")
        chip.get_by_role("button", name="Cancel the upload of big.zip").click()
        expect(ann.upload_chips).to_have_count(0)
        expect(ann.page.locator("#upload-tray")).to_be_hidden()
        expect(ann.composer).to_be_focused()
        expect(ann.send_button).to_be_disabled()
        ann.composer.press("Enter")  # an empty composer and no file: nothing to send
    finally:
        held.drop()

    ann.say("after the cancel")
    expect(bob.message("after the cancel")).to_have_count(1)
    assert [frame["message"] for frame in sends(relay)] == ["after the cancel"]
    assert "attachments" not in sends(relay)[0]
    expect(bob.messages).to_have_count(1)
    expect(bob.page.locator(".msg-attachments")).to_have_count(0)
    assert_clean(ann, bob)


def test_a_refused_upload_says_why_near_the_composer_and_sends_nothing(person, start_uploads_server, room):
    server = start_uploads_server(CHAT_MAX_UPLOAD_BYTES="1000")
    ann, relay = person(server, room, "Ann")

    ann.file_input.set_input_files(a_file("poster.png", "image/png", png(200, 200, (1, 2, 3)) + bytes(2000)))
    expect(ann.composer_error).to_be_visible()
    expect(ann.composer_error).to_have_text("“poster.png” is too large to send.")
    expect(ann.upload_chips).to_have_count(0)

    ann.file_input.set_input_files(a_file("tool.exe", "application/x-msdownload", b"MZ" + bytes(100)))
    expect(ann.composer_error).to_have_text("Files like “tool.exe” cannot be sent here.")
    expect(ann.upload_chips).to_have_count(0)
    expect(ann.send_button).to_be_disabled()
    assert sends(relay) == []
    expect(ann.messages).to_have_count(0)
    assert_clean(ann)


def test_a_file_gone_from_the_bucket_before_sending_is_refused_in_plain_words(person, server, s3, room):
    ann, relay = person(server, room, "Ann")
    bob, _ = person(server, room, "Bob")
    ann.file_input.set_input_files(a_file("notes.pdf", "application/pdf", PDF))
    ann.wait_uploaded("notes.pdf")
    (uploaded,) = s3.client().list_objects_v2(Bucket=UPLOADS, Prefix=f"uploads/{room}/")["Contents"]
    s3.client().delete_object(Bucket=UPLOADS, Key=uploaded["Key"])

    ann.composer.fill("see the notes")
    ann.composer.press("Enter")
    expect(ann.composer_error).to_have_text("That file could not be attached: upload it again.")
    # A final refusal: the message leaves the outbox, its words go back into the composer.
    expect(ann.pending).to_have_count(0)
    expect(ann.composer).to_have_value("see the notes")
    expect(ann.upload_chips).to_have_count(0)
    assert ann.outbox(room) == []
    assert len(sends(relay)) == 1 and sends(relay)[0]["attachments"] == [{"key": uploaded["Key"]}]
    bob.say("anyone there?")
    expect(ann.message("anyone there?")).to_have_count(1)
    expect(bob.messages).to_have_count(1)
    assert_clean(ann, bob)


def test_without_uploads_there_is_no_paperclip_and_files_are_ignored(person, start_server, room):
    server = start_server()  # no CHAT_UPLOADS_BUCKET: the welcome's uploadToken is null
    ann, _ = person(server, room, "Ann")
    expect(ann.page.locator("#attach-button")).to_be_hidden()
    ann.paste_files([a_file("screenshot.png", "image/png", png(4, 4))])
    ann.page.evaluate(
        """() => {
            const data = new DataTransfer();
            data.items.add(new File(["x"], "dropped.png", {type: "image/png"}));
            document.getElementById("messages").dispatchEvent(
                new DragEvent("dragenter", {bubbles: true, cancelable: true, dataTransfer: data}));
        }"""
    )
    expect(ann.drop_hint).to_be_hidden()
    expect(ann.upload_chips).to_have_count(0)
    expect(ann.composer_error).to_be_hidden()
    ann.say("plain words still go")
    assert_clean(ann)
