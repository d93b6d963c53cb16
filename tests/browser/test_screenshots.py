"""
The page in both themes on a phone and a desktop. Pictures go to a temporary
folder; ``make screenshots`` writes them to docs/screenshots/ for the README.
"""

import os
from pathlib import Path

from playwright.sync_api import expect

from ..support.chat_page import WAIT_MS
from .conftest import DESKTOP, PHONE

# Set by `make screenshots`: where the README's pictures are written.
SCREENSHOTS_DIR = os.environ.get("SCREENSHOTS_DIR", "")

# Who says what; the third item, when there is one, starts the message it replies to.
CONVERSATION = [
    ("Bob", "Morning all! Did the deploy go out last night?", None),
    ("Ann", "It did 🎉 Release notes are at https://example.com/releases/2.4", None),
    ("Chloé", "Nice. The dashboard feels much faster on my phone now.", None),
    ("Bob", "Same here. I'll close the performance ticket.", None),
    ("Ann", "Thanks @Chloé! Retro at 2 pm — bring snacks 🍪", None),
    ("Chloé", "Will do 👍", "Thanks @Chloé!"),
]
# Who reacts to which message (by its start) with what.
REACTIONS = [
    ("Bob", "It did 🎉", "🎉"),
    ("Chloé", "It did 🎉", "🎉"),
    ("Chloé", "It did 🎉", "❤️"),
    ("Ann", "Same here.", "👍"),
]
# Ann puts the time right after Chloé replied.
EDIT = ("Ann", "Thanks @Chloé! Retro at 2 pm — bring snacks 🍪", "Thanks @Chloé! Retro at 3 pm — bring snacks 🍪")


def luminance(css_color: str) -> float:
    parts = css_color[css_color.index("(") + 1 : css_color.index(")")].replace(",", " ").split()
    red, green, blue = (float(value) for value in parts[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def test_the_page_follows_the_system_theme_on_phone_and_desktop(open_chat, tmp_path):
    room = "team-chat"
    folder = Path(SCREENSHOTS_DIR) if SCREENSHOTS_DIR else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    people = {
        "Ann": open_chat(room, "Ann", viewport=DESKTOP),
        "Bob": open_chat(room, "Bob", viewport=DESKTOP),
        "Chloé": open_chat(room, "Chloé", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True),
    }
    on_phone = {"Chloé"}
    for name, text, reply_to in CONVERSATION:
        if reply_to:
            people[name].reply(reply_to, text, touch=name in on_phone)
        else:
            people[name].say(text)
    for page in people.values():
        expect(page.messages).to_have_count(len(CONVERSATION), timeout=WAIT_MS)
    for name, text, emoji in REACTIONS:
        people[name].react(text, emoji, touch=name in on_phone)
    editor, old, new = EDIT
    people[editor].edit(old, new)
    for page in people.values():
        expect(page.reaction("It did 🎉", "🎉")).to_contain_text("2", timeout=WAIT_MS)
        expect(page.reaction("Same here.", "👍")).to_contain_text("1", timeout=WAIT_MS)
        expect(page.message(new).locator(".msg-edited")).to_be_visible(timeout=WAIT_MS)
        expect(page.message("Will do 👍").locator(".msg-quote-text")).to_have_text(new, timeout=WAIT_MS)

    backgrounds = {}
    for shot, viewer in (("desktop", people["Ann"]), ("phone", people["Chloé"])):
        viewer.composer.fill("")
        viewer.page.locator("body").click(position={"x": 1, "y": 200})
        # Chloé scrolled up to react on her phone: back down to the newest.
        viewer.message(CONVERSATION[-1][1]).scroll_into_view_if_needed()
        for scheme in ("light", "dark"):
            viewer.page.emulate_media(color_scheme=scheme)
            backgrounds[shot, scheme] = luminance(
                viewer.page.evaluate("getComputedStyle(document.body).backgroundColor")
            )
            path = folder / f"{shot}-{scheme}.png"
            viewer.page.screenshot(path=str(path), animations="disabled")
            assert path.stat().st_size > 10_000
    for shot in ("desktop", "phone"):
        assert backgrounds[shot, "light"] > 0.9 and backgrounds[shot, "dark"] < 0.15
