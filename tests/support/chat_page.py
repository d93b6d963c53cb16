"""The chat page in a real browser, as a person uses it: open, type, read."""

import json
from dataclasses import dataclass, field

from playwright.sync_api import BrowserContext, Locator, Page, Response, expect

# Longest wait for anything the page does by itself (connect, render, reconnect).
WAIT_MS = 15_000


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

    def csp_violations(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]

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
