"""The chat page in a real browser, as a person uses it: open, type, read."""

import base64
import json
import re
from dataclasses import dataclass, field

from playwright.sync_api import BrowserContext, Locator, Page, Response, WebSocketRoute, expect

# Longest wait for anything the page does by itself (connect, render, reconnect).
WAIT_MS = 15_000
SOCKETS = re.compile(r"/ws/chat/")
# An init script: keeps every Content-Security-Policy violation the page reports (see ``policy_violations``).
RECORD_VIOLATIONS = """
window.policyViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.policyViolations.push({directive: event.effectiveDirective, blocked: event.blockedURI});
});
"""


def room_path(room: str) -> str:
    return "/" if room == "lobby" else f"/chat/{room}/"


@dataclass
class ChatPage:
    page: Page
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    response: Response | None = None

    @classmethod
    def open(cls, context: BrowserContext, base_url: str, room: str) -> "ChatPage":
        page = context.new_page()
        chat = cls(page)
        page.on("console", lambda message: chat.console.append(message.text))
        page.on("pageerror", lambda error: chat.errors.append(str(error)))

        def on_dialog(dialog) -> None:
            chat.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        chat.response = page.goto(base_url + room_path(room))
        return chat

    # --- What the page shows -------------------------------------------------

    @property
    def status(self) -> Locator:
        return self.page.locator("#status")

    @property
    def messages(self) -> Locator:
        """Chat messages from people (not the automatic ones)."""
        return self.page.locator("#message-list .msg[data-id]")

    @property
    def pending(self) -> Locator:
        """Messages written here that the server has not echoed yet (the outbox), shown as "Sending…"."""
        return self.page.locator("#message-list .msg-pending")

    @property
    def automatic(self) -> Locator:
        return self.page.locator("#message-list .msg-auto")

    @property
    def events(self) -> Locator:
        return self.page.locator("#message-list .event")

    @property
    def members(self) -> Locator:
        return self.page.locator("#member-list .member-name")

    @property
    def composer(self) -> Locator:
        return self.page.locator("#composer-input")

    @property
    def send_button(self) -> Locator:
        return self.page.get_by_role("button", name="Send")

    @property
    def earlier(self) -> Locator:
        return self.page.get_by_role("button", name="Load earlier messages")

    @property
    def composer_error(self) -> Locator:
        return self.page.locator("#composer-error")

    @property
    def reconnect_button(self) -> Locator:
        return self.page.locator("#reconnect-button")

    def message_texts(self) -> list[str]:
        """The text of every message shown, top to bottom."""
        return self.messages.locator(".msg-text").all_inner_texts()

    def pending_texts(self) -> list[str]:
        return self.pending.locator(".msg-text").all_inner_texts()

    def outbox(self, room: str) -> list[dict]:
        """What this browser's outbox for ``room`` holds in localStorage, oldest first."""
        return self.page.evaluate("room => JSON.parse(localStorage.getItem(`chat.outbox.${room}`) || '[]')", room)

    def connection_id(self) -> str:
        """The id of this page's live connection, as the online list knows it."""
        you = self.page.locator("#member-list .member", has=self.page.locator(".member-you"))
        expect(you).to_have_count(1, timeout=WAIT_MS)
        return you.get_attribute("data-connection-id")

    def message(self, text: str) -> Locator:
        return self.messages.filter(has=self.page.locator(".msg-text", has_text=text))

    @property
    def typing_line(self) -> Locator:
        """The line under the messages saying who is typing."""
        return self.page.locator("#typing-line")

    @property
    def composer_context(self) -> Locator:
        """Above the composer: the message being replied to, or that an edit is under way."""
        return self.page.locator("#composer-context")

    @property
    def mention_options(self) -> Locator:
        return self.page.get_by_role("listbox", name="People to mention").get_by_role("option")

    @property
    def notify_button(self) -> Locator:
        return self.page.get_by_role("button", name="Notify me of mentions")

    def reaction(self, text: str, emoji: str) -> Locator:
        """The chip under the message ``text`` for ``emoji`` (its count inside)."""
        return self.message(text).locator(f'.reaction[data-emoji="{emoji}"]')

    def tombstone(self, message_id: str) -> Locator:
        return self.page.locator(f'#message-list .msg[data-id="{message_id}"]')

    def message_id(self, text: str) -> str:
        return self.message(text).last.get_attribute("data-id")

    def menu_of(self, text: str, *, touch: bool = False) -> Locator:
        """
        Open the menu of the message ``text``: the menu. With a mouse, hover and click its "⋯"; by
        ``touch``, a long press on the message (the "⋯" does not show on a touch screen).
        """
        item = self.message(text).last
        menu = item.get_by_role("menu")
        if touch:
            bubble = item.locator(".bubble")
            box = bubble.bounding_box()
            point = {"pointerType": "touch", "isPrimary": True, "clientX": box["x"] + 8, "clientY": box["y"] + 8}
            bubble.dispatch_event("pointerdown", point)
            expect(menu).to_be_visible(timeout=WAIT_MS)
            bubble.dispatch_event("pointerup", point)
        else:
            item.hover()
            item.locator(".msg-menu-button").click()
            expect(menu).to_be_visible(timeout=WAIT_MS)
        return menu

    def choose(self, text: str, action: str, *, touch: bool = False) -> None:
        """Pick ``action`` (Reply, React…, Edit, Delete) from the menu of the message ``text``."""
        self.menu_of(text, touch=touch).get_by_role("menuitem", name=action).click()

    def react(self, text: str, emoji: str, *, touch: bool = False) -> None:
        """React to the message ``text`` with one of the picker's emoji, from its menu."""
        self.choose(text, "React…", touch=touch)
        self.page.get_by_role("button", name=f"React with {emoji}").click()

    def reply(self, text: str, reply: str, *, touch: bool = False) -> None:
        self.choose(text, "Reply", touch=touch)
        expect(self.composer_context).to_be_visible(timeout=WAIT_MS)
        self.say(reply)

    def edit(self, text: str, new_text: str) -> None:
        self.choose(text, "Edit")
        expect(self.composer).to_have_value(text, timeout=WAIT_MS)
        self.composer.fill(new_text)
        self.composer.press("Enter")

    def delete(self, text: str) -> None:
        self.choose(text, "Delete")
        dialog = self.page.get_by_role("dialog", name="Delete this message?")
        expect(dialog).to_be_visible(timeout=WAIT_MS)
        dialog.get_by_role("button", name="Delete", exact=True).click()
        expect(dialog).to_be_hidden(timeout=WAIT_MS)

    def set_hidden(self, hidden: bool) -> None:
        """Make the page believe its tab is in the background (or back in front), as the browser says it."""
        self.page.evaluate(
            """hidden => {
                const state = hidden ? "hidden" : "visible";
                Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
                Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
                document.dispatchEvent(new Event("visibilitychange"));
            }""",
            hidden,
        )

    def csp_violations(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]

    def policy_violations(self) -> list[dict]:
        """The ``securitypolicyviolation`` events seen (the context needs ``RECORD_VIOLATIONS``)."""
        return self.page.evaluate("window.policyViolations")

    # --- Files -------------------------------------------------------------------

    @property
    def attach_button(self) -> Locator:
        """The paperclip beside the composer."""
        return self.page.get_by_role("button", name="Attach a file")

    @property
    def file_input(self) -> Locator:
        """The hidden file input the paperclip opens."""
        return self.page.locator("#attach-input")

    @property
    def upload_chips(self) -> Locator:
        """Files above the composer: uploading, or uploaded and waiting for Send."""
        return self.page.locator("#upload-tray .upload-chip")

    def upload_chip(self, name: str) -> Locator:
        return self.upload_chips.filter(has=self.page.locator(".upload-chip-name", has_text=name))

    @property
    def drop_hint(self) -> Locator:
        return self.page.locator("#drop-hint")

    def thumbnail(self, name: str) -> Locator:
        """The inline image of the file ``name`` in a message."""
        return self.messages.locator(f".msg-attachments img[alt={json.dumps(name)}]")

    def file_card(self, name: str) -> Locator:
        """The download card of the file ``name`` in a message."""
        return self.messages.locator(".attachment-file").filter(
            has=self.page.locator(".attachment-name").get_by_text(name, exact=True)
        )

    def wait_uploaded(self, name: str) -> None:
        """Wait until the file ``name`` is uploaded: its chip offers to remove it, not to cancel it."""
        chip = self.upload_chip(name)
        expect(chip).to_have_attribute("data-state", "done", timeout=WAIT_MS)
        expect(chip.get_by_role("button", name=f"Remove {name}")).to_be_visible(timeout=WAIT_MS)

    def wait_image_loaded(self, image: Locator) -> None:
        """Wait until ``image`` has loaded its picture (a broken one has no natural width)."""
        expect(image).to_be_visible(timeout=WAIT_MS)
        self.page.wait_for_function(
            "image => image.complete && image.naturalWidth > 0", arg=image.element_handle(), timeout=WAIT_MS
        )

    def paste_files(self, files: list[dict]) -> None:
        """Paste ``files`` (``{"name", "mimeType", "buffer"}``, as Playwright takes them) into the composer."""
        self._dispatch_files("paste", files)

    def drop_files(self, files: list[dict]) -> None:
        """Drag ``files`` over the message list (checking the drop hint shows) and drop them there."""
        self._dispatch_files("dragenter", files)
        expect(self.drop_hint).to_be_visible(timeout=WAIT_MS)
        self._dispatch_files("drop", files)

    def _dispatch_files(self, kind: str, files: list[dict]) -> None:
        payload = [
            {"name": f["name"], "type": f["mimeType"], "base64": base64.b64encode(f["buffer"]).decode()} for f in files
        ]
        self.page.evaluate(
            """([kind, files]) => {
                const data = new DataTransfer();
                for (const {name, type, base64} of files) {
                    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
                    data.items.add(new File([bytes], name, {type}));
                }
                const options = {bubbles: true, cancelable: true};
                if (kind === "paste") {
                    document.getElementById("composer-input").dispatchEvent(
                        new ClipboardEvent("paste", {...options, clipboardData: data}));
                } else {
                    document.getElementById("messages").dispatchEvent(
                        new DragEvent(kind, {...options, dataTransfer: data}));
                }
            }""",
            [kind, payload],
        )

    # --- What a person does ------------------------------------------------------

    def wait_online(self, timeout: float = WAIT_MS) -> "ChatPage":
        expect(self.status).to_have_attribute("data-state", "online", timeout=timeout)
        return self

    def type_and_send(self, text: str) -> None:
        """Type ``text`` and press Enter, without waiting for the server (it may be offline)."""
        self.composer.fill(text)
        expect(self.send_button).to_be_enabled(timeout=WAIT_MS)
        self.composer.press("Enter")
        expect(self.composer).to_have_value("", timeout=WAIT_MS)

    def say(self, text: str) -> None:
        self.composer.fill(text)
        expect(self.send_button).to_be_enabled(timeout=WAIT_MS)
        self.composer.press("Enter")
        expect(self.message(text).last).to_be_visible(timeout=WAIT_MS)


def remembered(name: str | None = None, *, welcomed: bool = True) -> str:
    """A script that runs before the page's own: what this browser remembers from earlier visits."""
    lines = []
    if name is not None:
        lines.append(f"localStorage.setItem('chat.name', {json.dumps(name)});")
    if welcomed:
        lines.append("localStorage.setItem('chat.welcomed', 'earlier');")
    return "\n".join(lines)


class Relay:
    """
    Every frame between a context's pages and their server passes through
    here, recorded; ``drop_to_page`` names frames the page never gets, and
    ``close_after`` closes the page's socket (code 1012) just after one.
    While ``refusing``, a socket reaches no server: it is closed at once
    (1011, the server unavailable).
    """

    def __init__(self, context: BrowserContext) -> None:
        self.sent: list[dict] = []  # by the pages, in order
        self.drop_to_page = lambda frame: False
        self.close_after = lambda frame: False
        self.refusing = False
        context.route_web_socket(SOCKETS, self._connect)

    def _connect(self, page_side: WebSocketRoute) -> None:
        if self.refusing:
            page_side.close(code=1011)
            return
        server_side = page_side.connect_to_server()

        def to_server(message: str | bytes) -> None:
            self.sent.append(json.loads(message))
            server_side.send(message)

        def to_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if not self.drop_to_page(frame):
                page_side.send(message)
            if self.close_after(frame):
                page_side.close(code=1012)
                server_side.close()

        page_side.on_message(to_server)
        server_side.on_message(to_page)

    def sends_of(self, text: str) -> list[dict]:
        return [f for f in self.sent if f.get("action") == "sendMessage" and f.get("message") == text]
