"""The chat page in Debian's Chromium against a real daphne, Redis and DynamoDB Local."""

import re

from playwright.sync_api import expect

from ..support.chat_page import WAIT_MS, ChatPage
from .conftest import DESKTOP, PHONE

XSS = "<img src=x onerror=alert(1)>"


def test_two_people_in_a_room_chat_and_another_room_sees_nothing(open_chat, room):
    ann = open_chat(room, "Ann")
    bob = open_chat(room, "Bob")
    eve = open_chat(room + "-b", "Eve")

    ann.say("hello Bob 👋")
    from_ann = bob.message("hello Bob 👋")
    expect(from_ann).to_be_visible(timeout=WAIT_MS)
    expect(from_ann.locator(".msg-name")).to_have_text("Ann")
    expect(from_ann).not_to_have_class(re.compile("msg-own"))
    expect(ann.message("hello Bob 👋")).to_have_class(re.compile("msg-own"))

    bob.say("hi Ann, loud and clear")
    expect(ann.message("hi Ann, loud and clear").locator(".msg-name")).to_have_text("Bob")

    # Eve's own message shows her socket works; nothing from the other room arrived before it.
    eve.say("anyone here?")
    expect(eve.messages).to_have_count(1)
    expect(ann.message("anyone here?")).to_have_count(0)
    expect(bob.message("anyone here?")).to_have_count(0)


def test_the_online_list_follows_people_joining_and_leaving(open_chat, new_context, server, room):
    ann = open_chat(room, "Ann")
    expect(ann.members).to_have_text(["Ann"])
    expect(ann.page.locator("#members-total")).to_have_text("1")

    bob_context = new_context(name="Bob")
    bob = ChatPage.open(bob_context, server.url, room).wait_online()
    expect(ann.members).to_have_text(["Ann", "Bob"])
    expect(bob.members).to_have_text(["Bob", "Ann"])
    expect(ann.events.filter(has_text="Bob joined")).to_have_count(1)

    bob_context.close()
    expect(ann.members).to_have_text(["Ann"])
    expect(ann.events.filter(has_text="Bob left")).to_have_count(1)


def test_markup_in_a_message_shows_as_text_and_runs_nothing(open_chat, room):
    ann = open_chat(room, "Ann")
    bob = open_chat(room, "Bob")
    ann.say(XSS)
    shown = bob.message(XSS)
    expect(shown).to_be_visible(timeout=WAIT_MS)
    expect(shown.locator(".msg-text")).to_have_text(XSS)

    ann.say("docs at https://example.com/a?b=1. not javascript:alert(2)")
    link = bob.message("docs at").locator("a")
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("href", "https://example.com/a?b=1")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(link).to_have_attribute("target", "_blank")

    for page in (ann, bob):
        assert page.page.locator("#message-list img").count() == 0
        assert page.dialogs == [] and page.errors == []


def test_the_page_says_it_is_reconnecting_and_comes_back_after_a_restart(new_context, start_server, room):
    server = start_server()
    ann = ChatPage.open(new_context(name="Ann"), server.url, room).wait_online()
    ann.say("before the restart")

    server.stop()
    expect(ann.status).to_have_attribute("data-state", "reconnecting", timeout=WAIT_MS)
    expect(ann.status).to_contain_text("Reconnecting")
    expect(ann.send_button).to_be_disabled()

    server.restart()
    ann.wait_online(timeout=45_000)
    expect(ann.events.filter(has_text="back online")).to_have_count(1)
    ann.say("after the restart")
    expect(ann.message("before the restart")).to_have_count(1)


def test_on_a_phone_nothing_scrolls_sideways_and_the_list_is_a_drawer(open_chat, room):
    ann = open_chat(room, "Ann", viewport=PHONE, is_mobile=True, has_touch=True)
    ann.say("x" * 300)
    ann.say("https://example.com/" + "very-long-path-segment/" * 12)
    page = ann.page
    for width in (375, 320):
        page.set_viewport_size({"width": width, "height": 667})
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        expect(ann.composer).to_be_in_viewport()
        expect(ann.send_button).to_be_in_viewport()

    members = page.locator("#members")
    expect(members).to_be_hidden()
    page.get_by_role("button", name=re.compile("people online")).click()
    expect(members).to_be_visible()
    expect(ann.members).to_have_text(["Ann"])
    page.keyboard.press("Escape")
    expect(members).to_be_hidden()


def test_on_a_desktop_the_online_list_is_a_side_panel(open_chat, room):
    ann = open_chat(room, "Ann", viewport=DESKTOP)
    expect(ann.page.locator("#members")).to_be_visible()
    expect(ann.page.locator("#members-toggle")).to_be_hidden()
    expect(ann.members).to_have_text(["Ann"])


def test_a_first_visit_shows_the_automatic_welcome_once_and_sends_it_to_no_one(open_chat, new_context, server, room):
    bob = open_chat(room, "Bob")
    context = new_context(name="Ann", welcomed=False)
    ann = ChatPage.open(context, server.url, room).wait_online()
    expect(ann.automatic).to_have_count(3, timeout=WAIT_MS)
    expect(ann.automatic.first.locator(".badge")).to_have_text("Automatic")

    ann.say("hi, I read the tips")
    expect(bob.message("hi, I read the tips")).to_be_visible(timeout=WAIT_MS)
    expect(bob.messages).to_have_count(1)
    expect(bob.automatic).to_have_count(0)

    again = ChatPage.open(context, server.url, room).wait_online()
    expect(again.automatic).to_have_count(0)


def test_the_chosen_name_is_used_and_remembered(new_context, open_chat, server, room):
    bob = open_chat(room, "Bob")
    context = new_context()
    page = ChatPage.open(context, server.url, room).wait_online()
    page.page.get_by_role("button", name=re.compile("Your name")).click()
    page.page.get_by_label("Name", exact=True).fill("Zoë")
    page.page.get_by_role("button", name="Save").click()
    expect(page.page.locator("#name-text")).to_have_text("Zoë")
    page.wait_online()
    page.say("my name is Zoë")
    expect(bob.message("my name is Zoë").locator(".msg-name")).to_have_text("Zoë")

    later = ChatPage.open(context, server.url, room).wait_online()
    expect(later.page.locator("#name-text")).to_have_text("Zoë")
    expect(later.members.first).to_have_text("Zoë")


def test_the_room_picker_refuses_bad_names_and_opens_good_ones(open_chat, room):
    ann = open_chat(room, "Ann")
    page = ann.page
    page.get_by_role("button", name=re.compile("switch or create a room")).click()
    field = page.get_by_label("Room name")
    field.fill("no spaces!")
    field.press("Enter")
    expect(page.locator("#room-error")).to_be_visible()
    expect(page).to_have_url(re.compile(f"/chat/{room}/$"))

    field.fill(room + "-next")
    field.press("Enter")
    expect(page).to_have_url(re.compile(f"/chat/{room}-next/$"))
    ann.wait_online()
    expect(page.locator("#room-name")).to_have_text(room + "-next")


def test_the_counter_appears_near_the_limit_and_blocks_sending_past_it(open_chat, room):
    ann = open_chat(room, "Ann")
    counter = ann.page.locator("#composer-counter")
    ann.composer.fill("hello")
    expect(counter).to_have_text("")
    ann.composer.fill("x" * 3990)
    expect(counter).to_have_text("10 characters left")
    expect(ann.send_button).to_be_enabled()
    ann.composer.fill("x" * 4001)
    expect(counter).to_contain_text("1 over")
    expect(ann.send_button).to_be_disabled()
    ann.composer.fill("")
    expect(ann.send_button).to_be_disabled()


def test_shift_enter_makes_a_new_line_and_enter_sends(open_chat, room):
    ann = open_chat(room, "Ann")
    ann.composer.fill("first line")
    ann.composer.press("Shift+Enter")
    ann.composer.press_sequentially("second line")
    expect(ann.composer).to_have_value("first line\nsecond line")
    ann.composer.press("Enter")
    expect(ann.message("second line").locator(".msg-text")).to_have_text("first line\nsecond line")
    expect(ann.composer).to_have_value("")


def test_a_reader_who_scrolled_up_gets_a_new_messages_button(open_chat, room):
    ann = open_chat(room, "Ann", viewport={"width": 800, "height": 500})
    bob = open_chat(room, "Bob")
    for number in range(12):
        bob.say(f"filler message number {number}\nwith a second line")
    expect(ann.messages).to_have_count(12)
    ann.page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
    bob.say("something new")
    button = ann.page.locator("#new-messages")
    expect(button).to_be_visible()
    expect(button).to_contain_text("1 new message")
    button.click()
    expect(button).to_be_hidden()
    expect(ann.message("something new")).to_be_in_viewport()


def test_the_policy_forbids_inline_script_and_remote_origins_and_the_chat_breaks_none_of_it(open_chat, room):
    ann = open_chat(room, "Ann")
    bob = open_chat(room, "Bob")
    policy = ann.response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "*" not in policy
    assert not re.search(r"\b(https?|wss?):", policy.replace("data:", ""))

    ann.say("checking the policy")
    expect(bob.message("checking the policy")).to_be_visible(timeout=WAIT_MS)
    assert ann.csp_violations() == [] and bob.csp_violations() == []

    with ann.page.expect_console_message(lambda message: "Content Security Policy" in message.text, timeout=WAIT_MS):
        ann.page.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
            " document.head.append(s); }"
        )
    assert ann.page.evaluate("window.injected") is None
