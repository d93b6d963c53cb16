"""
A real Chromium (Debian's, driven by Playwright) and chat pages opened in it
against the real daphne servers of ``tests/conftest.py``.

The tests here use Playwright's sync API, so they are plain ``def`` tests: it
cannot run inside the event loop that async tests run in.
"""

import pytest

from ..support.browser import chromium
from ..support.chat_page import WAIT_MS, ChatPage, remembered

PHONE = {"width": 375, "height": 667}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def browser():
    """One Chromium for a module's tests; each test opens its own contexts (separate browsers' storage)."""
    with chromium() as browser:
        yield browser


@pytest.fixture
def new_context(browser):
    """Make a browser context (a person's own browser); all are closed after the test."""
    contexts = []

    def make(*, name: str | None = None, welcomed: bool = True, viewport: dict | None = None, **options):
        context = browser.new_context(viewport=viewport or DESKTOP, locale="en-US", **options)
        context.set_default_timeout(WAIT_MS)
        script = remembered(name, welcomed=welcomed)
        if script:
            context.add_init_script(script)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def open_chat(new_context, server):
    """Open the chat page of ``room`` as ``name`` in a browser of its own, once it is online."""

    def open_(room: str, name: str | None = None, *, base_url: str | None = None, **options) -> ChatPage:
        context = new_context(name=name, **options)
        return ChatPage.open(context, base_url or server.url, room).wait_online()

    return open_
