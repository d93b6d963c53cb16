"""
The chat page's conversation features between two people: who is typing,
reactions, replies, edits, deletes, mentions, the hidden tab's unread count
and notifications, and the directory of rooms with people in them. Each
change to a message is an event in the room's order: a page that missed one
gets it again when it fills a gap or reconnects.
"""

import re
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import expect

from chat.models import MODERATE_MESSAGES

from ..support.blocking_client import BlockingChatClient
from ..support.chat_page import WAIT_MS, ChatPage, Relay
from ..support.operators import ServerDatabase, new_user
from .conftest import PHONE

# Shorter than the 5 s a typing line stays up by itself: its clearing was the message's doing.
SOONER_THAN_THE_TYPING_TIMEOUT_MS = 2_500
TITLE = "#{room} · Chat"


def test_the_others_see_who_is_typing_until_the_message_arrives(open_chat, room):
    ann = open_chat(room, "Ann")
    bob = open_chat(room, "Bob")
    chloe = open_chat(room, "Chloé")

    ann.composer.press_sequentially("hello th")
    expect(bob.typing_line).to_have_text("Ann is typing…", timeout=WAIT_MS)
    expect(chloe.typing_line).to_have_text("Ann is typing…", timeout=WAIT_MS)
    bob.composer.press_sequentially("hi")
    expect(chloe.typing_line).to_have_text(re.compile(r"^(Ann and Bob|Bob and Ann) are typing…$"), timeout=WAIT_MS)
    expect(ann.typing_line).to_have_text("Bob is typing…", timeout=WAIT_MS)
    expect(bob.typing_line).to_have_text("Ann is typing…", timeout=WAIT_MS)  # never oneself

    ann.composer.press_sequentially("ere")
    ann.composer.press("Enter")
    expect(chloe.message("hello there")).to_be_visible(timeout=WAIT_MS)
    expect(chloe.typing_line).to_have_text("Bob is typing…", timeout=SOONER_THAN_THE_TYPING_TIMEOUT_MS)
    expect(bob.message("hello there")).to_be_visible(timeout=WAIT_MS)
    expect(bob.typing_line).to_have_text("", timeout=SOONER_THAN_THE_TYPING_TIMEOUT_MS)
    # And by itself, a while after the last keystroke.
    expect(ann.typing_line).to_have_text("", timeout=WAIT_MS)
    expect(chloe.typing_line).to_have_text("", timeout=WAIT_MS)
    expect(bob.typing_line).to_have_attribute("aria-live", "polite", timeout=WAIT_MS)


def test_the_page_says_it_is_typing_now_and_then_not_on_every_key(new_context, server, open_chat, room):
    context = new_context(name="Ann")
    relay = Relay(context)
    ann = ChatPage.open(context, server.url, room).wait_online()
    bob = open_chat(room, "Bob")

    def typing_sent() -> int:
        return sum(1 for frame in relay.sent if frame.get("action") == "typing")

    ann.composer.press_sequentially("a dozen keys")
    expect(bob.typing_line).to_have_text("Ann is typing…", timeout=WAIT_MS)
    ann.composer.press("Enter")
    expect(bob.message("a dozen keys")).to_be_visible(timeout=WAIT_MS)
    expect(bob.typing_line).to_have_text("", timeout=WAIT_MS)
    assert typing_sent() == 1


def test_a_reaction_toggles_and_both_see_its_count(open_chat, room):
    ann = open_chat(room, "Ann")
    bob = open_chat(room, "Bob")
    ann.say("lunch at noon?")
    expect(bob.message("lunch at noon?")).to_be_visible(timeout=WAIT_MS)

    bob.react("lunch at noon?", "👍")
    for page in (ann, bob):
        expect(page.reaction("lunch at noon?", "👍")).to_contain_text("1", timeout=WAIT_MS)
    # Highlighted for the one who added it only.
    expect(bob.reaction("lunch at noon?", "👍")).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
    expect(ann.reaction("lunch at noon?", "👍")).to_have_attribute("aria-pressed", "false", timeout=WAIT_MS)

    ann.reaction("lunch at noon?", "👍").click()
    for page in (ann, bob):
        expect(page.reaction("lunch at noon?", "👍")).to_contain_text("2", timeout=WAIT_MS)
    expect(ann.reaction("lunch at noon?", "👍")).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)

    # Any other emoji, typed.
    ann.choose("lunch at noon?", "React…")
    ann.page.get_by_label("Another emoji").fill("🦄")
    ann.page.get_by_role("button", name="Add", exact=True).click()
    expect(bob.reaction("lunch at noon?", "🦄")).to_contain_text("1", timeout=WAIT_MS)

    # Clicked again, each takes theirs back: gone for both.
    bob.reaction("lunch at noon?", "👍").click()
    expect(ann.reaction("lunch at noon?", "👍")).to_contain_text("1", timeout=WAIT_MS)
    ann.reaction("lunch at noon?", "👍").click()
    ann.reaction("lunch at noon?", "🦄").click()
    for page in (ann, bob):
        expect(page.reaction("lunch at noon?", "👍")).to_have_count(0, timeout=WAIT_MS)
        expect(page.reaction("lunch at noon?", "🦄")).to_have_count(0, timeout=WAIT_MS)
    assert ann.errors == [] and bob.errors == []


def test_a_reply_quotes_the_original_for_both_and_leads_back_to_it(open_chat, room):
    ann = open_chat(room, "Ann")
    bob = open_chat(room, "Bob")
    ann.say("Who is bringing the cake on Friday?")
    expect(bob.message("Who is bringing the cake")).to_be_visible(timeout=WAIT_MS)

    bob.choose("Who is bringing the cake", "Reply")
    expect(bob.composer_context).to_contain_text("Replying to Ann", timeout=WAIT_MS)
    expect(bob.composer_context).to_contain_text("Who is bringing the cake on Friday?", timeout=WAIT_MS)
    expect(bob.composer).to_be_focused(timeout=WAIT_MS)
    bob.say("I will 🎂")
    expect(bob.composer_context).to_be_hidden(timeout=WAIT_MS)

    for page in (ann, bob):
        quote = page.message("I will 🎂").locator(".msg-quote")
        expect(quote).to_be_visible(timeout=WAIT_MS)
        expect(quote.locator(".msg-quote-name")).to_have_text("Ann", timeout=WAIT_MS)
        expect(quote.locator(".msg-quote-text")).to_have_text("Who is bringing the cake on Friday?", timeout=WAIT_MS)
        expect(page.message("I will 🎂").locator(".msg-text")).to_have_text("I will 🎂", timeout=WAIT_MS)

    ann.message("I will 🎂").locator(".msg-quote").click()
    original = ann.message("Who is bringing the cake")
    expect(original).to_have_class(re.compile(r"\bmsg-highlight\b"), timeout=WAIT_MS)
    expect(original).to_be_in_viewport(timeout=WAIT_MS)

    # A reply can be called off: the next message is no reply.
    bob.choose("Who is bringing the cake", "Reply")
    expect(bob.composer_context).to_be_visible(timeout=WAIT_MS)
    bob.composer.press("Escape")
    expect(bob.composer_context).to_be_hidden(timeout=WAIT_MS)
    bob.say("not a reply")
    expect(ann.message("not a reply").locator(".msg-quote")).to_have_count(0, timeout=WAIT_MS)


def test_an_edit_shows_the_new_text_and_edited_for_both(open_chat, room):
    ann = open_chat(room, "Ann")
    bob = open_chat(room, "Bob")
    ann.say("see you at 3 pn")
    bob.say("ok!")
    # Only the sender may edit; anyone may reply.
    menu = bob.menu_of("see you at 3 pn")
    expect(menu.get_by_role("menuitem")).to_have_text(["Reply", "React…"], timeout=WAIT_MS)
    bob.page.keyboard.press("Escape")
    expect(menu).to_be_hidden(timeout=WAIT_MS)

    ann.composer.fill("a draft I keep")
    ann.edit("see you at 3 pn", "see you at 3 pm")
    for page in (ann, bob):
        edited = page.message("see you at 3 pm")
        expect(edited).to_be_visible(timeout=WAIT_MS)
        expect(edited.locator(".msg-edited")).to_have_text("(edited)", timeout=WAIT_MS)
        expect(page.message("see you at 3 pn")).to_have_count(0, timeout=WAIT_MS)
    # Saving gave back what was being written before.
    expect(ann.composer).to_have_value("a draft I keep", timeout=WAIT_MS)

    # Escape calls an edit off and changes nothing.
    ann.choose("see you at 3 pm", "Edit")
    expect(ann.composer_context).to_contain_text("Editing", timeout=WAIT_MS)
    ann.composer.fill("something else entirely")
    ann.composer.press("Escape")
    expect(ann.composer_context).to_be_hidden(timeout=WAIT_MS)
    expect(ann.composer).to_have_value("a draft I keep", timeout=WAIT_MS)
    expect(bob.message("something else entirely")).to_have_count(0, timeout=WAIT_MS)
    expect(ann.message("ok!").locator(".msg-edited")).to_have_count(0, timeout=WAIT_MS)


def test_a_delete_asks_first_then_shows_a_tombstone_for_both(open_chat, room):
    ann = open_chat(room, "Ann")
    bob = open_chat(room, "Bob")
    ann.say("oops, wrong room")
    bob.react("oops, wrong room", "😂")
    expect(ann.reaction("oops, wrong room", "😂")).to_contain_text("1", timeout=WAIT_MS)
    bob.reply("oops, wrong room", "happens to everyone")
    message_id = ann.message_id("oops, wrong room")
    expect(bob.menu_of("oops, wrong room").get_by_role("menuitem", name="Delete")).to_have_count(0, timeout=WAIT_MS)
    bob.page.keyboard.press("Escape")

    # Cancelled: nothing happens.
    ann.choose("oops, wrong room", "Delete")
    dialog = ann.page.get_by_role("dialog", name="Delete this message?")
    expect(dialog).to_contain_text("oops, wrong room", timeout=WAIT_MS)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden(timeout=WAIT_MS)
    expect(bob.message("oops, wrong room")).to_be_visible(timeout=WAIT_MS)

    ann.delete("oops, wrong room")
    for page in (ann, bob):
        gone = page.tombstone(message_id)
        expect(gone).to_contain_text("message deleted", timeout=WAIT_MS)
        expect(gone.locator(".msg-text")).to_have_count(0, timeout=WAIT_MS)
        expect(gone.locator(".reaction")).to_have_count(0, timeout=WAIT_MS)
        expect(gone.locator(".msg-menu-button")).to_have_count(0, timeout=WAIT_MS)
        quote = page.message("happens to everyone").locator(".msg-quote-text")
        expect(quote).to_have_text("message deleted", timeout=WAIT_MS)
    assert ann.dialogs == [] and bob.dialogs == []  # asked in the page, not with window.confirm

    # Still a tombstone for someone who comes later.
    later = open_chat(room, "Chloé")
    expect(later.tombstone(message_id)).to_contain_text("message deleted", timeout=WAIT_MS)
    expect(later.page.get_by_text("oops, wrong room")).to_have_count(0, timeout=WAIT_MS)


def test_an_operator_may_delete_anyones_message_and_others_may_not(new_context, server_env, start_server, room):
    moderator = new_user("moderator", perms=[MODERATE_MESSAGES.split(".", 1)[1]])
    database = ServerDatabase.sqlite()
    try:
        database.prepare(server_env, [moderator])
        server = start_server(DATABASE_URL=database.url)
        bob = ChatPage.open(new_context(name="Bob"), server.url, room).wait_online()
        chloe = ChatPage.open(new_context(name="Chloé"), server.url, room).wait_online()
        signed_in = new_context()
        signed_in.add_cookies([{"name": "sessionid", "value": moderator.session_key, "url": server.url}])
        operator = ChatPage.open(signed_in, server.url, room).wait_online()

        bob.say("buy cheap watches at spam.example")
        message_id = bob.message_id("buy cheap watches")
        others_menu = chloe.menu_of("buy cheap watches").get_by_role("menuitem")
        expect(others_menu).to_have_text(["Reply", "React…"], timeout=WAIT_MS)
        chloe.page.keyboard.press("Escape")
        operators_menu = operator.menu_of("buy cheap watches").get_by_role("menuitem")
        expect(operators_menu).to_have_text(["Reply", "React…", "Delete"], timeout=WAIT_MS)
        operator.page.keyboard.press("Escape")
        operator.delete("buy cheap watches")
        for page in (bob, chloe, operator):
            expect(page.tombstone(message_id)).to_contain_text("message deleted", timeout=WAIT_MS)
    finally:
        database.drop()


def test_the_menu_works_from_the_keyboard_and_by_a_long_press(open_chat, room):
    ann = open_chat(room, "Ann")
    phone = open_chat(room, "Bob", viewport=PHONE, is_mobile=True, has_touch=True)
    ann.say("keyboard or thumb")

    button = ann.message("keyboard or thumb").locator(".msg-menu-button")
    button.focus()
    expect(button).to_be_visible(timeout=WAIT_MS)
    ann.page.keyboard.press("Enter")
    menu = ann.message("keyboard or thumb").get_by_role("menu")
    expect(menu.get_by_role("menuitem", name="Reply")).to_be_focused(timeout=WAIT_MS)
    ann.page.keyboard.press("ArrowDown")
    expect(menu.get_by_role("menuitem", name="React…")).to_be_focused(timeout=WAIT_MS)
    ann.page.keyboard.press("End")
    expect(menu.get_by_role("menuitem", name="Delete")).to_be_focused(timeout=WAIT_MS)
    ann.page.keyboard.press("Escape")
    expect(menu).to_be_hidden(timeout=WAIT_MS)
    expect(button).to_be_focused(timeout=WAIT_MS)

    # No "⋯" to see on a touch screen: a long press opens the menu.
    expect(phone.message("keyboard or thumb").locator(".msg-menu-button")).to_have_css("opacity", "0")
    menu = phone.menu_of("keyboard or thumb", touch=True)
    menu.get_by_role("menuitem", name="React…").tap()
    phone.page.get_by_role("button", name="React with 🎉").tap()
    expect(ann.reaction("keyboard or thumb", "🎉")).to_contain_text("1", timeout=WAIT_MS)
    page = phone.page
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_a_mention_stands_out_for_the_person_named(open_chat, room):
    ann = open_chat(room, "Ann")
    bob = open_chat(room, "Bob Lee")
    expect(ann.members).to_have_count(2, timeout=WAIT_MS)

    ann.composer.press_sequentially("thanks @Bo")
    expect(ann.mention_options).to_have_text(["@Bob Lee"], timeout=WAIT_MS)
    ann.composer.press("Enter")  # picks the name, sends nothing
    expect(ann.composer).to_have_value("thanks @Bob Lee ", timeout=WAIT_MS)
    ann.composer.press_sequentially("for the review")
    ann.composer.press("Enter")

    text = "thanks @Bob Lee for the review"
    expect(bob.message(text)).to_be_visible(timeout=WAIT_MS)
    expect(bob.message(text).locator(".mention-me")).to_have_text("@Bob Lee", timeout=WAIT_MS)
    expect(ann.message(text).locator(".mention")).to_have_text("@Bob Lee", timeout=WAIT_MS)
    expect(ann.message(text).locator(".mention-me")).to_have_count(0, timeout=WAIT_MS)

    # Escape closes the list; the mouse picks from it too.
    bob.composer.press_sequentially("@")
    expect(bob.mention_options).to_have_text(["@Ann"], timeout=WAIT_MS)
    bob.composer.press("Escape")
    expect(bob.mention_options).to_have_count(0, timeout=WAIT_MS)
    bob.composer.fill("")
    bob.composer.press_sequentially("hey @A")
    bob.mention_options.first.click()
    expect(bob.composer).to_have_value("hey @Ann ", timeout=WAIT_MS)
    bob.composer.press("Enter")
    expect(ann.message("hey @Ann").locator(".mention-me")).to_have_text("@Ann", timeout=WAIT_MS)
    expect(bob.message("hey @Ann").locator(".mention-me")).to_have_count(0, timeout=WAIT_MS)


def test_a_hidden_tab_counts_unread_messages_in_its_title(open_chat, room):
    ann = open_chat(room, "Ann")
    bob = open_chat(room, "Bob")
    title = TITLE.format(room=room)
    expect(ann.page).to_have_title(title, timeout=WAIT_MS)

    ann.set_hidden(True)
    bob.say("first while you were away")
    bob.say("second while you were away")
    expect(ann.message("second while you were away")).to_be_visible(timeout=WAIT_MS)
    expect(ann.page).to_have_title(f"(2) {title}", timeout=WAIT_MS)
    expect(bob.page).to_have_title(title, timeout=WAIT_MS)  # one's own messages are not unread

    ann.set_hidden(False)
    expect(ann.page).to_have_title(title, timeout=WAIT_MS)


NOTIFICATION_STUB = """
window.__asked = 0;
window.__notifications = [];
class FakeNotification {
  static permission = "default";
  static async requestPermission() { window.__asked += 1; FakeNotification.permission = "granted"; return "granted"; }
  constructor(title, options) { window.__notifications.push({ title, body: options && options.body }); }
  addEventListener() {}
  close() {}
}
Object.defineProperty(window, "Notification", { configurable: true, value: FakeNotification });
"""


def test_notify_me_asks_only_when_pressed_then_a_mention_while_hidden_notifies(new_context, server, open_chat, room):
    context = new_context(name="Ann")
    context.add_init_script(NOTIFICATION_STUB)
    ann = ChatPage.open(context, server.url, room).wait_online()
    bob = open_chat(room, "Bob")
    assert ann.page.evaluate("window.__asked") == 0  # never on load

    expect(ann.notify_button).to_have_attribute("aria-pressed", "false", timeout=WAIT_MS)
    ann.notify_button.click()
    expect(ann.notify_button).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
    assert ann.page.evaluate("window.__asked") == 1

    ann.set_hidden(True)
    bob.say("no mention here")
    bob.say("@Ann can you look at this?")
    expect(ann.message("can you look at this?")).to_be_visible(timeout=WAIT_MS)
    notifications = ann.page.evaluate("window.__notifications")
    assert notifications == [{"title": f"Bob mentioned you in #{room}", "body": "@Ann can you look at this?"}]


def test_the_directory_lists_rooms_with_people_and_the_search_filters(open_chat, room, server):
    busy, quiet = f"{room}-busy", f"{room}-quiet"
    ann = open_chat(busy, "Ann")
    open_chat(busy, "Bob")
    open_chat(quiet, "Chloé")

    # From the room picker.
    ann.page.get_by_role("button", name=re.compile("switch or create a room")).click()
    ann.page.get_by_role("link", name="All rooms with people in them").click()
    expect(ann.page).to_have_url(re.compile(r"/rooms/$"), timeout=WAIT_MS)
    page = ann.page
    entries = page.locator("#room-directory > li.room-entry")
    busy_entry = entries.filter(has=page.locator(f'a[href$="/chat/{busy}/"]'))
    quiet_entry = entries.filter(has=page.locator(f'a[href$="/chat/{quiet}/"]'))
    expect(busy_entry.locator(".room-count")).to_have_text("2", timeout=WAIT_MS)
    expect(quiet_entry.locator(".room-count")).to_have_text("1", timeout=WAIT_MS)

    search = page.locator("input#room-search")
    search.fill(quiet)
    search.press("Enter")
    expect(quiet_entry).to_be_visible(timeout=WAIT_MS)
    expect(busy_entry).to_be_hidden(timeout=WAIT_MS)

    answer = page.request.get(f"{server.url}/rooms/?format=json").json()
    counts = {item["room"]: item["count"] for item in answer["rooms"]}
    assert counts[busy] == 2 and counts[quiet] == 1

    page.goto(f"{server.url}/rooms/")
    busy_entry.get_by_role("link").click()
    ChatPage(page).wait_online()
    expect(page.locator("#room-name")).to_have_text(busy, timeout=WAIT_MS)


def test_a_change_missed_in_a_gap_is_filled_in_from_the_room_order(new_context, server, room):
    context = new_context(name="Ann")
    relay = Relay(context)
    ann = ChatPage.open(context, server.url, room).wait_online()
    bob = BlockingChatClient(server.ws_url, room, "Bob")
    try:
        said = bob.say("react to this")
        expect(ann.message("react to this")).to_be_visible(timeout=WAIT_MS)
        relay.drop_to_page = lambda frame: frame.get("type") == "reaction"
        bob.send({"action": "react", "messageId": said["id"], "emoji": "👍"})
        reaction = bob.receive_until(lambda frame: frame["type"] == "reaction")
        assert reaction["seq"] == said["seq"] + 1
        bob.say("and this comes after")
        # The message came one seq past a change the page never got: it asked for the gap.
        expect(ann.reaction("react to this", "👍")).to_contain_text("1", timeout=WAIT_MS)
        asked = [frame for frame in relay.sent if frame.get("action") == "history"]
        assert asked == [{"action": "history", "after": said["seq"]}]
        assert ann.message_texts() == ["react to this", "and this comes after"]
    finally:
        bob.close()


def test_a_change_missed_while_away_arrives_with_the_reconnect(new_context, server, room):
    context = new_context(name="Ann")
    relay = Relay(context)
    urls: list[str] = []
    context.on("page", lambda page: page.on("websocket", lambda socket: urls.append(socket.url)))
    ann = ChatPage.open(context, server.url, room).wait_online()
    bob = BlockingChatClient(server.ws_url, room, "Bob")
    try:
        said = bob.say("the meeting is on Tuesday")
        deleted = bob.say("a message to take back")
        expect(ann.message("a message to take back")).to_be_visible(timeout=WAIT_MS)
        # The page's socket closes right after an edit it never sees; it reconnects with ?since=.
        edited = lambda frame: frame.get("type") == "message_edited"  # noqa: E731
        relay.drop_to_page = relay.close_after = edited
        bob.send({"action": "editMessage", "messageId": said["id"], "message": "the meeting is on Wednesday"})
        now = ann.message("the meeting is on Wednesday")
        expect(now).to_be_visible(timeout=WAIT_MS)
        expect(now.locator(".msg-edited")).to_have_text("(edited)", timeout=WAIT_MS)
        assert parse_qs(urlsplit(urls[-1]).query)["since"] == [str(deleted["seq"])]

        relay.drop_to_page = relay.close_after = lambda frame: False
        bob.send({"action": "deleteMessage", "messageId": deleted["id"]})
        expect(ann.tombstone(deleted["id"])).to_contain_text("message deleted", timeout=WAIT_MS)
        assert ann.message_texts() == ["the meeting is on Wednesday"]
    finally:
        bob.close()
