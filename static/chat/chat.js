// The chat page: one WebSocket speaking the documented wire protocol.
// Everything a person or the server wrote reaches the page as text nodes.
// Features live in their own files, wired here: outbox.js, typing.js, reactions.js,
// message_actions.js (reply, edit, delete), mentions.js, unread.js (title and notifications),
// uploads.js (files and images).
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("chat-config").textContent);
  const $ = (id) => document.getElementById(id);

  const KEYS = {
    name: "chat.name",
    welcomed: "chat.welcomed",
    rooms: "chat.recentRooms",
    myIds: "chat.myConnectionIds",
    clientId: "chat.clientId",
    notify: "chat.notifyMentions",
    outbox: `chat.outbox.${config.room}`,
  };
  const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
  // Close codes the server uses (see the README); daphne drops close reasons, so an
  // `error` frame with one of CLOSE_REASONS comes just before the close.
  const CLOSE_IDLE = 4000;
  const CLOSE_MAX_DURATION = 4001;
  const CLOSE_SERVER_ERROR = 1011;
  // Closes after which the page reconnects at once (with ?since=, so nothing is missed):
  // the connection's longest life, a page that fell behind its room, a server shutting down.
  const RECONNECT_AT_ONCE = new Set([CLOSE_MAX_DURATION, 4008, 1012]);
  // Close codes after which reconnecting by itself would only repeat the refusal.
  const FINAL_CLOSES = new Map([
    [4401, "This chat is for signed-in people only. Sign in, then reconnect."],
    [4003, "An operator closed your connection."],
    [1008, "You were disconnected for sending messages too fast."],
  ]);
  const CLOSE_REASONS = new Set([
    "flooding",
    "idle_timeout",
    "max_duration",
    "login_required",
    "server_unavailable",
    "slow_consumer",
    "server_restart",
  ]);
  // What counts as the person being at the page (an idle close waits for one of these).
  const ACTIVITY_EVENTS = ["pointerdown", "pointermove", "keydown", "wheel", "touchstart"];
  const HISTORY_LIMIT = Number(config.historyLimit) > 0 ? Number(config.historyLimit) : 50;
  const BACKOFF_BASE_MS = 1000;
  const BACKOFF_CAP_MS = 30000;
  const GROUP_WINDOW_MS = 5 * 60 * 1000;
  const NEAR_BOTTOM_PX = 80;
  const MAX_LENGTH = Number(config.maxLength) > 0 ? Number(config.maxLength) : 4000;
  const COUNTER_FROM = Math.max(50, Math.floor(MAX_LENGTH * 0.1));
  const GUIDE_NAME = "Chat guide";
  const GUIDE = [
    "Hi there 👋 Welcome to the chat! Everyone in this room sees what you write here, as you write it.",
    "Choose the name others see with the button at the top right. The room name at the top left lets you switch rooms, or start a new one.",
    "Enter sends, Shift+Enter starts a new line, and links open in a new tab. These three tips are automatic and only you see them. Say hello! 💬",
  ];
  // How long after sending a message its sender may edit it (the server's CHAT_EDIT_WINDOW).
  const EDIT_WINDOW_MS = (Number(config.editWindow) > 0 ? Number(config.editWindow) : 900) * 1000;
  const ERROR_WORDS = {
    invalid_message: "Type something before sending.",
    frame_too_large: "That message is too large to send.",
    message_too_long: `That message is longer than ${MAX_LENGTH} characters. Shorten it or split it.`,
    invalid_cursor: "Earlier messages could not be loaded. Try again.",
    server_error: "The server could not handle that just now. Try again in a moment.",
    bad_json: "The message could not be read by the server. Try again.",
    bad_frame: "The message could not be read by the server. Try again.",
    unknown_action: "The server did not understand that request.",
    unknown_message: "That message is not in this room any more (it was deleted, or is too old).",
    invalid_reaction: "A reaction is one emoji. Pick one from the list, or type a single emoji.",
    too_many_reactions: "You have put as many different reactions on that message as one person can.",
    not_allowed: "Only the person who sent a message can change it.",
    edit_window_passed: `Messages can be edited for ${Math.round(EDIT_WINDOW_MS / 60000)} minutes after sending; that one is older.`,
    invalid_attachment: "That file could not be attached: upload it again.",
  };
  // Refusals of a message that the outbox meets by sending it again a little later.
  const RETRY_WORDS = {
    rate_limited: "Slow down: you are sending faster than this chat allows. Your message goes again in a moment.",
    server_error: "The server could not take your message just now. It goes again in a moment.",
    server_unavailable: "The chat could not store your message just now. It goes again in a moment.",
  };
  // Refusals of a message that sending it again would only repeat. The moderation ones (muted, a
  // locked room, slow mode) show the server's sentence, which says until when.
  const FINAL_REFUSALS = new Set([
    "invalid_message",
    "message_too_long",
    "frame_too_large",
    "muted",
    "room_locked",
    "slow_mode",
    "invalid_attachment",
  ]);
  // A `history` request for a gap that gets no answer in this long is asked again.
  const GAP_TIMEOUT_MS = 10000;
  // Frames that change a message the page may show; each has its place (seq) in the room's order.
  const CHANGE_TYPES = new Set(["reaction", "message_edited", "message_deleted"]);

  const storage = {
    get(key) {
      try {
        return window.localStorage.getItem(key);
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        window.localStorage.setItem(key, value);
      } catch {
        // Private modes may refuse storage; the page still works, it just forgets.
      }
    },
    remove(key) {
      try {
        window.localStorage.removeItem(key);
      } catch {
        // As above.
      }
    },
    list(key) {
      try {
        const value = JSON.parse(this.get(key) || "[]");
        return Array.isArray(value) ? value.filter((item) => typeof item === "string") : [];
      } catch {
        return [];
      }
    },
  };

  const el = {
    app: $("app"),
    status: $("status"),
    statusText: $("status-text"),
    reconnect: $("reconnect-button"),
    messages: $("messages"),
    list: $("message-list"),
    newMessages: $("new-messages"),
    newMessagesText: $("new-messages-text"),
    composer: $("composer"),
    input: $("composer-input"),
    send: $("send-button"),
    counter: $("composer-counter"),
    error: $("composer-error"),
    members: $("members"),
    memberList: $("member-list"),
    membersToggle: $("members-toggle"),
    membersClose: $("members-close"),
    membersCount: $("members-count"),
    membersTotal: $("members-total"),
    backdrop: $("backdrop"),
    nameButton: $("name-button"),
    nameText: $("name-text"),
    nameAvatar: $("name-avatar"),
    nameDialog: $("name-dialog"),
    nameForm: $("name-form"),
    nameInput: $("name-input"),
    nameError: $("name-error"),
    roomButton: $("room-button"),
    roomDialog: $("room-dialog"),
    roomForm: $("room-form"),
    roomInput: $("room-input"),
    roomError: $("room-error"),
    roomList: $("room-list"),
    announcer: $("announcer"),
    earlierItem: $("load-earlier-item"),
    earlier: $("load-earlier"),
    sendLabel: $("send-label"),
    typingLine: $("typing-line"),
    mentionList: $("mention-list"),
    context: $("composer-context"),
    contextLabel: $("composer-context-label"),
    contextText: $("composer-context-text"),
    contextCancel: $("composer-context-cancel"),
    deleteDialog: $("delete-dialog"),
    deletePreview: $("delete-preview"),
    notify: $("notify-button"),
    conversation: $("conversation"),
    attach: $("attach-button"),
    picker: $("attach-input"),
    tray: $("upload-tray"),
    dropHint: $("drop-hint"),
  };

  const state = {
    socket: null,
    status: "connecting",
    attempt: 0,
    retryTimer: 0,
    countdownTimer: 0,
    retryAt: 0,
    replacing: false,
    everOnline: false,
    me: null,
    // This person's sender tag (the same in all their tabs) and whether they may delete any
    // message, from the welcome; null and false from a server that sends neither.
    sender: null,
    operator: false,
    displayName: "",
    chosenName: storage.get(KEYS.name) || "",
    myIds: new Set(storage.list(KEYS.myIds)),
    members: new Map(),
    seen: new Set(),
    lastId: "",
    oldestId: "",
    // The room's order: every message up to lastSeq is shown (or does not exist); maxSeq is the
    // largest seen, oldestSeq the smallest. They stay null while the server sends no seq.
    lastSeq: null,
    maxSeq: null,
    oldestSeq: null,
    gap: null,
    gapTimer: 0,
    requests: 0,
    earlierOrder: 0,
    pending: new Map(),
    retryNotice: false,
    more: false,
    loadingEarlier: false,
    closeReason: null,
    withSince: false,
    dropped: false,
    openedAt: 0,
    activeAt: 0,
    waitingForReturn: false,
    guideShown: false,
    unread: 0,
    atBottom: true,
    scrollOnNextOwn: false,
  };

  const CLIENT_ID = window.ChatOutbox.clientId(storage, KEYS.clientId);
  const outbox = window.ChatOutbox.create({ storage, key: KEYS.outbox, send: sendFrame });
  const typing = window.ChatTyping.create({
    line: el.typingLine,
    send: sendFrame,
    isMine: (frame) => frame.connectionId === state.me || isOwnSender(frame.sender),
  });
  const reactions = window.ChatReactions.create({ send: sendFrame, onError: showError });
  const mentions = window.ChatMentions.create({
    input: el.input,
    listbox: el.mentionList,
    names: () => [...state.members.values()],
    me: () => state.displayName,
    onPick: composerChanged,
    announce,
  });
  const actions = window.ChatMessageActions.create({
    list: el.list,
    composer: {
      input: el.input,
      send: el.send,
      sendLabel: el.sendLabel,
      context: el.context,
      contextLabel: el.contextLabel,
      contextText: el.contextText,
      contextCancel: el.contextCancel,
    },
    dialog: { dialog: el.deleteDialog, preview: el.deletePreview },
    send: sendFrame,
    renderText: appendRichText,
    canEdit: (item) =>
      item.classList.contains("msg-own") &&
      item.dataset.deleted !== "true" &&
      Date.now() - Number(item.dataset.time) < EDIT_WINDOW_MS,
    canDelete: (item) => item.dataset.deleted !== "true" && (item.classList.contains("msg-own") || state.operator),
    openPicker: (item, opener) => reactions.openPicker(item, opener),
    onComposerChange: () => {
      autosize();
      updateComposer();
    },
    onError: showError,
    announce,
  });
  const unread = window.ChatUnread.create({
    button: el.notify,
    storage,
    key: KEYS.notify,
    room: config.room,
    announce,
  });
  const uploads = window.ChatUploads.create({
    button: el.attach,
    picker: el.picker,
    tray: el.tray,
    dropZone: el.conversation,
    hint: el.dropHint,
    input: el.input,
    endpoint: config.uploadsUrl || "/api/uploads/",
    onChange: updateComposer,
    onError: showError,
    announce,
  });

  // --- Small helpers -------------------------------------------------------

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function hueOf(text) {
    let hash = 2166136261;
    for (const ch of String(text)) {
      hash ^= ch.codePointAt(0);
      hash = Math.imul(hash, 16777619);
    }
    return Math.abs(hash) % 360;
  }

  function initialOf(name) {
    const trimmed = String(name || "?").trim() || "?";
    if (window.Intl && Intl.Segmenter) {
      const first = new Intl.Segmenter().segment(trimmed)[Symbol.iterator]().next().value;
      if (first) return first.segment.toLocaleUpperCase();
    }
    return Array.from(trimmed)[0].toLocaleUpperCase();
  }

  function avatar(name, className = "avatar") {
    const node = make("span", className, initialOf(name));
    node.setAttribute("aria-hidden", "true");
    node.style.setProperty("--hue", String(hueOf(name)));
    return node;
  }

  function characters(text) {
    return Array.from(text).length;
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  const dayTimeFormat = new Intl.DateTimeFormat(undefined, {
    month: "short",
    day: "numeric",
    hour: "numeric",
    minute: "2-digit",
  });
  const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

  function timeNode(iso) {
    const when = iso ? new Date(iso) : new Date();
    const valid = !Number.isNaN(when.getTime());
    const moment = valid ? when : new Date();
    const today = moment.toDateString() === new Date().toDateString();
    const node = make("time", "msg-time", (today ? timeFormat : dayTimeFormat).format(moment));
    node.dateTime = moment.toISOString();
    node.title = fullFormat.format(moment);
    return node;
  }

  // Text with clickable http(s) links, built from nodes: nothing is parsed as HTML.
  const LINK_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;

  function appendRichText(parent, text) {
    let last = 0;
    for (const match of text.matchAll(LINK_PATTERN)) {
      let candidate = match[0];
      // Punctuation that ends a sentence is not part of the link; a ")" is, when it closes a "(".
      for (;;) {
        const end = candidate.slice(-1);
        if (/[.,;:!?'"\]}]/.test(end)) {
          candidate = candidate.slice(0, -1);
        } else if (end === ")" && candidate.split("(").length <= candidate.split(")").length - 1) {
          candidate = candidate.slice(0, -1);
        } else {
          break;
        }
      }
      let url;
      try {
        url = new URL(candidate);
      } catch {
        continue;
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") continue;
      mentions.append(parent, text.slice(last, match.index));
      const link = make("a", "", candidate);
      link.href = url.href;
      link.target = "_blank";
      link.rel = "noopener noreferrer nofollow";
      parent.append(link);
      last = match.index + candidate.length;
    }
    mentions.append(parent, text.slice(last));
  }

  function announce(text) {
    const line = make("p", "", text);
    el.announcer.append(line);
    while (el.announcer.childElementCount > 3) el.announcer.firstElementChild.remove();
  }

  // --- The message list ------------------------------------------------------

  function nearBottom() {
    const box = el.messages;
    return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    el.messages.scrollTop = el.messages.scrollHeight;
    state.unread = 0;
    el.newMessages.hidden = true;
  }

  // Append items at the bottom; stay at the newest message unless the reader scrolled up.
  function appendItems(items, { force = false, counts = 0 } = {}) {
    if (!items.length) return;
    const stick = force || nearBottom();
    items.forEach(place);
    if (stick) {
      scrollToBottom();
    } else if (counts > 0) {
      state.unread += counts;
      el.newMessagesText.textContent = state.unread === 1 ? "1 new message" : `${state.unread} new messages`;
      el.newMessages.hidden = false;
    }
  }

  // A new item goes above the messages still being sent; a message with a seq goes above any
  // shown message with a greater one (a gap filled late), so the list keeps the room's order.
  function place(item) {
    const end = el.list.querySelector(".msg-pending");
    let anchor = end;
    const seq = itemSeq(item);
    if (seq !== null) {
      let node = end ? end.previousElementSibling : el.list.lastElementChild;
      for (; node; node = node.previousElementSibling) {
        if (!node.dataset.id) continue; // joins, leaves, notices, the automatic tips
        const other = itemSeq(node);
        if (other === null || other < seq) break;
        anchor = node;
      }
    }
    if (anchor) anchor.before(item);
    else el.list.append(item);
    group(item);
    group(item.nextElementSibling);
  }

  // Consecutive messages from one sender within a few minutes share one name and avatar.
  function group(item) {
    if (!item || !item.classList.contains("msg")) return;
    const previous = item.previousElementSibling;
    const continued =
      Boolean(previous) &&
      previous.classList.contains("msg") &&
      previous.dataset.senderKey === item.dataset.senderKey &&
      Math.abs(Number(item.dataset.time) - Number(previous.dataset.time)) < GROUP_WINDOW_MS;
    item.classList.toggle("msg-continued", continued);
    const bubble = item.querySelector(".bubble");
    const prefix = bubble.querySelector(".msg-prefix");
    // The name is hidden on screen for a continued message; screen readers still hear it.
    if (continued && !prefix) bubble.prepend(make("span", "visually-hidden msg-prefix", `${item.dataset.who}: `));
    else if (!continued && prefix) prefix.remove();
  }

  function bubbleItem({ name, text, sentAt, own, automatic, senderKey, reply = null, attachments = null }) {
    const parsed = sentAt ? new Date(sentAt).getTime() : Date.now();
    const item = make("li", "msg");
    if (own) item.classList.add("msg-own");
    if (automatic) {
      item.classList.add("msg-auto");
      item.dataset.automatic = "true";
    }
    item.dataset.senderKey = senderKey;
    item.dataset.time = String(Number.isNaN(parsed) ? Date.now() : parsed);
    item.dataset.who = own ? "You" : name;
    item.style.setProperty("--hue", String(hueOf(name)));
    item.append(automatic ? avatar("✦", "avatar avatar-auto") : avatar(name));

    const body = make("div", "msg-body");
    const meta = make("div", "msg-meta");
    meta.append(make("span", "msg-name", own ? "You" : name));
    if (automatic) meta.append(make("span", "badge", "Automatic"));
    meta.append(timeNode(sentAt));
    body.append(meta);

    const bubble = make("div", "bubble");
    if (reply) bubble.append(actions.quoteNode(reply));
    const files = window.ChatUploads.render(attachments);
    // Files with no caption: no empty paragraph.
    if (text || !files) {
      const paragraph = make("p", "msg-text");
      appendRichText(paragraph, text);
      bubble.append(paragraph);
    }
    if (files) bubble.append(files);
    body.append(bubble);
    item.append(body);
    return item;
  }

  // A message frame's place in the room's order, or null when the server sent none.
  function seqOf(frame) {
    return frame && Number.isSafeInteger(frame.seq) && frame.seq >= 0 ? frame.seq : null;
  }

  function itemSeq(item) {
    return item.dataset.seq === undefined ? null : Number(item.dataset.seq);
  }

  // The list item for a message frame, or null when it is not for this page or already shown.
  // `earlier`: it comes from a page of older messages.
  function messageItem(frame, { earlier = false } = {}) {
    if (!isMessageFrame(frame) || typeof frame.id !== "string") return null;
    const deleted = frame.deleted === true;
    if (!deleted && typeof frame.message !== "string") return null;
    if (frame.room && frame.room !== config.room) return null;
    const mine = settle(frame);
    if (state.seen.has(frame.id)) {
      refresh(frame);
      return null;
    }
    const seq = seqOf(frame);
    // The echo of a message sent again after a reload, older than everything shown: it
    // takes its place when the reader pages back that far.
    if (!earlier && seq !== null && state.oldestSeq !== null && seq < state.oldestSeq && state.more) return null;
    state.seen.add(frame.id);
    if (frame.id > state.lastId) state.lastId = frame.id;
    if (!state.oldestId || frame.id < state.oldestId) state.oldestId = frame.id;
    if (seq !== null) {
      if (state.maxSeq === null || seq > state.maxSeq) state.maxSeq = seq;
      if (state.oldestSeq === null || seq < state.oldestSeq) state.oldestSeq = seq;
    }
    const name = typeof frame.name === "string" && frame.name ? frame.name : "someone";
    const item = bubbleItem({
      name,
      text: deleted ? "" : frame.message,
      sentAt: frame.sentAt,
      own: mine || ownFrame(frame),
      automatic: false,
      senderKey: typeof frame.sender === "string" ? `s:${frame.sender}` : `c:${frame.connectionId}`,
      reply: !deleted && validReply(frame.replyTo) ? frame.replyTo : null,
      attachments: deleted ? null : frame.attachments,
    });
    item.dataset.id = frame.id;
    if (seq !== null) item.dataset.seq = String(seq);
    item.dataset.sender = name;
    item.dataset.version = String(Number.isSafeInteger(frame.version) ? frame.version : 1);
    if (deleted) {
      actions.showDeleted(item);
    } else {
      actions.attach(item);
      if (frame.editedAt) actions.markEdited(item, frame.editedAt);
      reactions.show(item, frame.reactions);
    }
    return item;
  }

  function isMessageFrame(frame) {
    return Boolean(frame) && typeof frame === "object" && (frame.type === undefined || frame.type === "message");
  }

  function validReply(reply) {
    return Boolean(reply) && typeof reply === "object" && typeof reply.id === "string";
  }

  function isOwnSender(tag) {
    return state.sender !== null && typeof tag === "string" && tag === state.sender;
  }

  // This person's message (from any of their tabs): by sender tag, or, from a server that sends
  // none, by the connection ids this browser has had.
  function ownFrame(frame) {
    if (state.sender !== null && typeof frame.sender === "string") return frame.sender === state.sender;
    return state.myIds.has(frame.connectionId);
  }

  // --- Changes to messages: reactions, edits, deletes ------------------------------------

  function shownMessage(id) {
    return typeof id === "string" ? el.list.querySelector(`.msg[data-id="${CSS.escape(id)}"]`) : null;
  }

  function versionOf(item) {
    const version = Number(item.dataset.version);
    return Number.isSafeInteger(version) ? version : 0;
  }

  // A change has its place in the room's order like a message (so the seq cursor counts it);
  // it changes the message it names when the page shows it and it is newer than what is
  // shown: two changes at once may reach the page in either order, the version says which
  // is the newer. A tombstone is final. Returns the item changed, or null.
  function applyChange(frame) {
    if (frame.room && frame.room !== config.room) return null;
    const seq = seqOf(frame);
    if (seq !== null && (state.maxSeq === null || seq > state.maxSeq)) state.maxSeq = seq;
    const item = shownMessage(frame.messageId);
    if (!item || item.dataset.deleted === "true") return null;
    if (!Number.isSafeInteger(frame.version) || frame.version <= versionOf(item)) return null;
    item.dataset.version = String(frame.version);
    if (frame.type === "reaction") {
      reactions.applied(item, frame, { own: isOwnSender(frame.sender) });
    } else if (frame.type === "message_edited" && typeof frame.message === "string") {
      actions.showEdit(item, frame);
    } else if (frame.type === "message_deleted") {
      reactions.clear(item);
      actions.showDeleted(item);
    }
    return item;
  }

  // A message the page shows came again (a history page, a resend's echo): when it is newer
  // than what is shown, it replaces it.
  function refresh(frame) {
    const item = shownMessage(frame.id);
    if (!item || item.dataset.deleted === "true") return;
    // Every copy carries newly signed links to its files, whatever its version.
    window.ChatUploads.refresh(item.querySelector(".msg-attachments"), frame.attachments);
    if (!Number.isSafeInteger(frame.version) || frame.version <= versionOf(item)) return;
    item.dataset.version = String(frame.version);
    if (frame.deleted === true) {
      reactions.clear(item);
      actions.showDeleted(item);
      return;
    }
    if (frame.editedAt && typeof frame.message === "string") actions.showEdit(item, frame);
    reactions.show(item, frame.reactions);
  }

  function whose(item) {
    return item.classList.contains("msg-own") ? "your" : `${item.dataset.sender}'s`;
  }

  // Messages in order at the bottom: live ones, the welcome's history, what was missed.
  // After ?since= (and in a gap's page) the changes made meanwhile come too, in the room's
  // order; they are applied once the messages they may name are in place.
  // `fresh`: the reader has not seen these yet (live or missed, not the first history).
  function addMessages(frames, { live = false, fresh = live } = {}) {
    const shown = [];
    const changes = [];
    for (const frame of frames) {
      if (frame && CHANGE_TYPES.has(frame.type)) {
        changes.push(frame);
        continue;
      }
      const item = messageItem(frame);
      if (item) shown.push({ item, frame });
    }
    if (shown.length) {
      const ownShown = shown.some(({ item }) => item.classList.contains("msg-own"));
      const force = ownShown && state.scrollOnNextOwn;
      if (ownShown) state.scrollOnNextOwn = false;
      const others = shown.filter(({ item }) => !item.classList.contains("msg-own") && item.dataset.deleted !== "true");
      appendItems(
        shown.map(({ item }) => item),
        { force, counts: others.length },
      );
      for (const { item, frame } of others) {
        const name = item.dataset.sender;
        const files = window.ChatUploads.describe(frame.attachments);
        if (live) {
          const answering = validReply(frame.replyTo) ? ` (replying to ${frame.replyTo.name || "someone"})` : "";
          if (!files) announce(`${name}${answering}: ${frame.message}`);
          else if (!frame.message) announce(`${name}${answering} sent ${files}`);
          else announce(`${name}${answering}: ${frame.message} (sent ${files})`);
        }
        const text = frame.message || (files ? `sent ${files}` : "");
        if (fresh) unread.arrived({ name, text, mentionsMe: mentions.mentionsMe(frame.message), live });
      }
    }
    for (const frame of changes) applyChange(frame);
  }

  // Older messages above the ones shown, keeping what the reader looks at where it is.
  function addEarlier(frames) {
    const items = frames
      .filter(isMessageFrame)
      .map((frame) => messageItem(frame, { earlier: true }))
      .filter(Boolean);
    const box = el.messages;
    const height = box.scrollHeight;
    const top = box.scrollTop;
    el.earlierItem.after(...items);
    items.forEach(group);
    if (items.length) group(items[items.length - 1].nextElementSibling);
    return () => {
      box.scrollTop = top + (box.scrollHeight - height);
      return items.length;
    };
  }

  function addEvent(text, sentAt) {
    const item = make("li", "event");
    item.append(make("span", "", text));
    item.append(timeNode(sentAt));
    appendItems([item]);
  }

  function addNotice(text, sentAt) {
    const item = make("li", "notice");
    item.setAttribute("role", "note");
    const label = make("span", "notice-label", "Notice from the operators");
    label.append(" · ", timeNode(sentAt));
    item.append(label, make("p", "", text));
    appendItems([item], { force: true });
    announce(`Notice from the operators: ${text}`);
  }

  // --- Earlier messages --------------------------------------------------------

  function setMore(more) {
    state.more = Boolean(more) && Boolean(state.oldestId);
    const hadFocus = document.activeElement === el.earlier;
    el.earlierItem.hidden = !state.more;
    if (hadFocus && !state.more) el.messages.focus();
  }

  function finishLoading() {
    state.loadingEarlier = false;
    el.earlier.removeAttribute("aria-disabled");
    el.earlier.textContent = "Load earlier messages";
  }

  function loadEarlier() {
    if (state.loadingEarlier || !state.oldestId) return;
    if (!sendFrame({ action: "history", before: state.oldestSeq ?? state.oldestId })) {
      showError("Not connected right now. Earlier messages load once the chat is back online.");
      return;
    }
    state.loadingEarlier = true;
    state.earlierOrder = ++state.requests;
    // aria-disabled rather than disabled: a disabled button would drop the keyboard focus.
    el.earlier.setAttribute("aria-disabled", "true");
    el.earlier.textContent = "Loading earlier messages…";
  }

  // Shown once per browser, after the room's history so that it reads as the newest thing.
  function showGuide() {
    if (state.guideShown) return;
    state.guideShown = true;
    if (storage.get(KEYS.welcomed)) return;
    storage.set(KEYS.welcomed, new Date().toISOString());
    GUIDE.forEach((text, index) => {
      const show = () => {
        const item = bubbleItem({
          name: GUIDE_NAME,
          text,
          sentAt: new Date().toISOString(),
          own: false,
          automatic: true,
          senderKey: "guide",
        });
        appendItems([item], { force: true });
      };
      if (index === 0) show();
      else window.setTimeout(show, 700 * index);
    });
  }

  // --- Members ----------------------------------------------------------------

  function renderMembers() {
    const people = [...state.members.entries()].sort(([idA, a], [idB, b]) => {
      if (idA === state.me) return -1;
      if (idB === state.me) return 1;
      return a.localeCompare(b, undefined, { sensitivity: "base" });
    });
    const items = people.map(([id, name]) => {
      const item = make("li", "member");
      item.dataset.connectionId = id;
      item.append(avatar(name, "avatar avatar-small"), make("span", "member-name", name));
      if (id === state.me) item.append(make("span", "member-you", "(you)"));
      return item;
    });
    el.memberList.replaceChildren(...items);
    const count = String(people.length);
    el.membersCount.textContent = count;
    el.membersTotal.textContent = count;
  }

  function openDrawer() {
    el.app.classList.add("drawer-open");
    el.backdrop.hidden = false;
    el.membersToggle.setAttribute("aria-expanded", "true");
    el.membersClose.focus();
  }

  function closeDrawer({ restoreFocus = true } = {}) {
    if (!el.app.classList.contains("drawer-open")) return;
    el.app.classList.remove("drawer-open");
    el.backdrop.hidden = true;
    el.membersToggle.setAttribute("aria-expanded", "false");
    if (restoreFocus) el.membersToggle.focus();
  }

  // --- Connection -------------------------------------------------------------

  function setStatus(status, text, { action = null, say = null } = {}) {
    state.status = status;
    el.status.dataset.state = status;
    el.app.dataset.state = status;
    el.statusText.textContent = text;
    if (action) {
      el.reconnect.textContent = action;
      el.reconnect.hidden = false;
    } else {
      el.reconnect.hidden = true;
    }
    if (say) announce(say);
    updateComposer();
  }

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams();
    if (state.chosenName) params.set("name", state.chosenName);
    // Who sends, so that the server takes a message the outbox sends again only once.
    params.set("clientId", CLIENT_ID);
    // Back after a gap: the server sends every message after the last one the page has (by seq,
    // or by id from a server that sends no seq), then live ones.
    const since = state.lastSeq !== null ? String(state.lastSeq) : state.lastId;
    if (since) params.set("since", since);
    state.withSince = Boolean(since);
    const query = params.toString();
    return `${scheme}//${window.location.host}${config.socketPath}${query ? `?${query}` : ""}`;
  }

  function clearRetry() {
    window.clearTimeout(state.retryTimer);
    window.clearInterval(state.countdownTimer);
    state.retryTimer = 0;
    state.countdownTimer = 0;
  }

  function connect() {
    clearRetry();
    state.waitingForReturn = false;
    if (state.attempt === 0 && !state.everOnline) setStatus("connecting", "Connecting…");
    else setStatus("reconnecting", "Reconnecting…");
    let socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch {
      connectionLost();
      return;
    }
    state.socket = socket;
    state.closeReason = null;
    state.openedAt = Date.now();
    // Nothing more goes out before this socket's welcome; a gap is asked for again on it.
    outbox.pause();
    forgetGap();
    socket.addEventListener("message", (event) => {
      if (state.socket === socket) receive(event.data);
    });
    socket.addEventListener("close", (event) => {
      if (state.socket === socket) closed(event.code);
    });
  }

  function closed(code) {
    state.socket = null;
    finishLoading();
    const reason = state.closeReason;
    state.closeReason = null;
    if (state.replacing) {
      state.replacing = false;
      state.attempt = 0;
      connect();
      return;
    }
    if (FINAL_CLOSES.has(code)) {
      clearRetry();
      const words = FINAL_CLOSES.get(code);
      setStatus("offline", words, { action: "Reconnect", say: `Disconnected. ${words}` });
      return;
    }
    if (code === CLOSE_IDLE) {
      pauseUntilBack();
      return;
    }
    if (RECONNECT_AT_ONCE.has(code)) {
      // Start the next connection at once, no backoff (a little jitter so sockets
      // closed together do not all come back in the same instant).
      clearRetry();
      setStatus("reconnecting", "Reconnecting…");
      state.retryTimer = window.setTimeout(connect, Math.round(Math.random() * 1000));
      return;
    }
    if (!navigator.onLine) {
      clearRetry();
      state.dropped = true;
      setStatus("offline", "Offline: no network. The chat reconnects when it is back.", {
        action: "Reconnect",
        say: "Connection lost: no network.",
      });
      return;
    }
    connectionLost(code === CLOSE_SERVER_ERROR || (reason && reason.code === "server_unavailable"));
  }

  // The server closed an idle socket. Someone still at the page carries on at once; otherwise
  // the page waits for them to come back (input, or the tab shown again) rather than
  // reconnecting on its own only to be closed as idle again.
  function pauseUntilBack() {
    clearRetry();
    if (!document.hidden && state.activeAt > state.openedAt) {
      connect();
      return;
    }
    state.waitingForReturn = true;
    setStatus("paused", "Paused: inactive for a while", {
      action: "Reconnect",
      say: "Paused after a while without activity. It carries on when you are back.",
    });
  }

  function cameBack() {
    if (state.waitingForReturn && !document.hidden) reconnectNow();
  }

  function connectionLost(unavailable = false) {
    state.dropped = true;
    if (!state.everOnline) showGuide();
    scheduleRetry(unavailable ? "Chat unavailable; retrying" : "Reconnecting");
  }

  function scheduleRetry(words) {
    clearRetry();
    // Exponential backoff with jitter: many pages dropped at once do not return in step.
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** state.attempt);
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    const first = state.attempt === 0;
    state.attempt += 1;
    state.retryAt = Date.now() + delay;
    state.retryTimer = window.setTimeout(connect, delay);
    const tick = () => {
      const seconds = Math.max(1, Math.ceil((state.retryAt - Date.now()) / 1000));
      setStatus("reconnecting", `${words} in ${seconds} s`, { action: "Try now" });
    };
    tick();
    state.countdownTimer = window.setInterval(tick, 250);
    if (first && state.everOnline) announce("Connection lost. Reconnecting.");
  }

  function reconnectNow() {
    state.attempt = 0;
    if (state.socket) {
      state.replacing = true;
      state.socket.close(1000);
    } else {
      connect();
    }
  }

  function sendFrame(frame) {
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN) return false;
    state.socket.send(JSON.stringify(frame));
    return true;
  }

  // --- Frames from the server ---------------------------------------------------

  const HANDLERS = {
    welcome(frame) {
      const back = state.dropped;
      state.dropped = false;
      state.me = frame.connectionId;
      state.sender = typeof frame.sender === "string" && frame.sender ? frame.sender : null;
      state.operator = frame.operator === true;
      // Bound to this connection: each welcome brings its own (null: uploads are off).
      uploads.setToken(frame.uploadToken);
      typing.reset();
      state.everOnline = true;
      state.attempt = 0;
      rememberMyId(frame.connectionId);
      state.displayName = frame.name || state.chosenName;
      renderName();
      state.members = new Map();
      for (const person of Array.isArray(frame.members) ? frame.members : []) {
        if (person && typeof person.connectionId === "string") {
          state.members.set(person.connectionId, String(person.name || ""));
        }
      }
      state.members.set(frame.connectionId, state.displayName);
      renderMembers();
      const history = Array.isArray(frame.history) ? frame.history : [];
      const first = !state.withSince && !state.oldestId;
      addMessages(history, { fresh: state.withSince });
      // Everything after ?since= (or the room's latest page): the page has the room up to here.
      state.lastSeq = state.maxSeq;
      // The latest page of the room: a full one suggests there is more before it.
      if (first) setMore(history.length >= HISTORY_LIMIT);
      clearError();
      if (back) addEvent("You are back online.");
      setStatus("online", "Online", { say: back ? "Back online." : null });
      showGuide();
      // After the history, whose echoes have acknowledged what arrived before the drop.
      outbox.connected();
    },
    history(frame) {
      const messages = Array.isArray(frame.messages) ? frame.messages : [];
      if (answersGap(messages)) {
        fillGap(messages, frame.more);
        return;
      }
      if (!state.loadingEarlier) return;
      finishLoading();
      const settle = addEarlier(messages);
      setMore(frame.more);
      const count = settle();
      announce(count === 1 ? "1 earlier message loaded." : `${count} earlier messages loaded.`);
    },
    presence(frame) {
      if (frame.room && frame.room !== config.room) return;
      const id = frame.connectionId;
      const name = String(frame.name || "someone");
      if (frame.event === "join" && !state.members.has(id)) {
        state.members.set(id, name);
        renderMembers();
        if (id !== state.me) addEvent(`${name} joined`);
      } else if (frame.event === "leave" && state.members.has(id)) {
        typing.stopped(id);
        state.members.delete(id);
        renderMembers();
        addEvent(`${name} left`);
      }
    },
    message(frame) {
      if (typeof frame.connectionId === "string") typing.stopped(frame.connectionId);
      addMessages([frame], { live: true });
      followLive(frame);
    },
    typing(frame) {
      if (!frame.room || frame.room === config.room) typing.received(frame);
    },
    reaction(frame) {
      const item = applyChange(frame);
      followLive(frame);
      if (item && !isOwnSender(frame.sender) && typeof frame.emoji === "string") {
        announce(`${frame.emoji} ${frame.added ? "added to" : "taken back from"} ${whose(item)} message.`);
      }
    },
    message_edited(frame) {
      const item = applyChange(frame);
      followLive(frame);
      if (item) announce(`${item.classList.contains("msg-own") ? "You" : item.dataset.sender} edited a message: ${frame.message}`);
    },
    message_deleted(frame) {
      const item = applyChange(frame);
      followLive(frame);
      if (item) announce(`${whose(item) === "your" ? "Your" : whose(item)} message was deleted.`);
    },
    system(frame) {
      if (typeof frame.message === "string" && frame.message) addNotice(frame.message, frame.sentAt);
    },
    error(frame) {
      // Which request it answers, when the server says (older servers do not): only a refused
      // sendMessage concerns the outbox.
      const aboutSending = !frame.action || frame.action === "sendMessage";
      // The message in flight was refused for now: the outbox keeps it and sends it again shortly.
      const retrying = aboutSending && Object.hasOwn(RETRY_WORDS, frame.code) && outbox.refused() !== null;
      if (retrying) {
        showError(RETRY_WORDS[frame.code]);
        state.retryNotice = true;
      }
      if (CLOSE_REASONS.has(frame.code)) {
        // The close that follows says what happens next; this only says why.
        state.closeReason = frame;
        return;
      }
      if (frame.code === "invalid_cursor") {
        if (state.gap && !state.loadingEarlier) giveUpGap();
        finishLoading();
      }
      if (retrying) return;
      if (frame.code === "rate_limited") {
        showError("Slow down: you are sending faster than this chat allows. Wait a moment, then try again.");
        return;
      }
      if (aboutSending && FINAL_REFUSALS.has(frame.code)) unsend(outbox.refused({ final: true }), frame.code);
      const known = Object.hasOwn(ERROR_WORDS, frame.code);
      const serverWords = typeof frame.message === "string" && frame.message ? frame.message : "";
      showError(known ? ERROR_WORDS[frame.code] : serverWords || "Something went wrong.");
    },
  };

  function receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    const handler = Object.hasOwn(HANDLERS, frame.type) ? HANDLERS[frame.type] : null;
    if (handler) handler(frame);
  }

  function rememberMyId(id) {
    // Merged with what other tabs of this browser stored, so each recognises the others' messages.
    const ids = new Set([...storage.list(KEYS.myIds), ...state.myIds, id]);
    state.myIds = ids;
    storage.set(KEYS.myIds, JSON.stringify([...ids].slice(-30)));
  }

  // --- Messages on their way (the outbox) ----------------------------------------------

  // A message in the outbox, shown at once at the bottom as "Sending…" until its echo comes.
  function addPending(entry) {
    const item = bubbleItem({
      name: state.displayName || "You",
      text: entry.text,
      sentAt: entry.queuedAt,
      own: true,
      automatic: false,
      senderKey: state.sender !== null ? `s:${state.sender}` : `c:${state.me}`,
      reply: entry.reply || null,
      attachments: entry.attachments || null,
    });
    item.classList.add("msg-pending");
    item.dataset.state = "sending";
    item.dataset.clientMessageId = entry.id;
    item.querySelector(".msg-body").append(make("p", "msg-status", "Sending…"));
    state.pending.set(entry.id, item);
    el.list.append(item);
    group(item);
    scrollToBottom();
  }

  function removePending(id) {
    const item = state.pending.get(id);
    if (!item) return;
    state.pending.delete(id);
    const next = item.nextElementSibling;
    item.remove();
    group(next);
  }

  // The echo of a message from this page's outbox: its "Sending…" bubble makes way for the
  // message itself (placed by the caller). True when the message was this page's.
  function settle(frame) {
    let id = frame.clientMessageId;
    if (typeof id !== "string") {
      // From a server that echoes no clientMessageId: this connection's own message with the
      // text of the one in flight is its echo (messages go one at a time).
      const sent = outbox.inFlight();
      if (!sent || frame.connectionId !== state.me || frame.message !== sent.text) return false;
      id = sent.id;
    }
    const shown = state.pending.has(id);
    const known = outbox.acknowledge(id);
    removePending(id);
    if ((shown || known) && state.retryNotice) {
      state.retryNotice = false;
      clearError();
    }
    return shown || known;
  }

  // The server will never take this message (too long for it, say): it leaves the list and,
  // when the box is empty, goes back into it (its files back into the tray, unless they were
  // what the server refused), so nothing typed is lost; otherwise its bubble stays, marked as
  // not sent.
  function unsend(entry, code) {
    if (!entry) return;
    const item = state.pending.get(entry.id);
    if (!el.input.value.trim() && !uploads.busy() && !uploads.ready().length) {
      removePending(entry.id);
      el.input.value = entry.text;
      if (entry.attachments && code !== "invalid_attachment") uploads.restore(entry.attachments);
      autosize();
      updateComposer();
    } else if (item) {
      state.pending.delete(entry.id);
      item.classList.replace("msg-pending", "msg-failed");
      item.dataset.state = "failed";
      item.querySelector(".msg-status").textContent = "Not sent";
    }
  }

  // --- Gaps in the room's order --------------------------------------------------------

  // A live message more than one past the last the page has: something was missed. Ask for
  // what came after it, once; the answer fills the gap in place.
  function followLive(frame) {
    const seq = seqOf(frame);
    if (seq === null || state.gap) return;
    if (state.lastSeq === null || seq === state.lastSeq + 1) state.lastSeq = seq;
    else if (seq > state.lastSeq + 1) askForGap();
  }

  function askForGap() {
    forgetGap();
    if (!sendFrame({ action: "history", after: state.lastSeq })) return;
    state.gap = { after: state.lastSeq, order: ++state.requests };
    state.gapTimer = window.setTimeout(() => {
      state.gap = null;
      if (state.maxSeq > state.lastSeq) askForGap();
    }, GAP_TIMEOUT_MS);
  }

  function forgetGap() {
    window.clearTimeout(state.gapTimer);
    state.gap = null;
  }

  function giveUpGap() {
    forgetGap();
    state.lastSeq = state.maxSeq;
  }

  // Whether a `history` frame answers the gap request rather than "Load earlier messages":
  // the gap's messages all come after its cursor; with both asked, an empty page answers the
  // first asked.
  function answersGap(messages) {
    if (!state.gap) return false;
    if (!state.loadingEarlier) return true;
    if (!messages.length) return state.gap.order < state.earlierOrder;
    return messages.every((frame) => seqOf(frame) !== null && seqOf(frame) > state.gap.after);
  }

  function fillGap(messages, more) {
    const { after } = state.gap;
    forgetGap();
    addMessages(messages, { fresh: true });
    const reached = Math.max(after, ...messages.map(seqOf).filter((seq) => seq !== null));
    if (more && reached > after && reached < state.maxSeq) {
      state.lastSeq = reached;
      askForGap();
    } else {
      state.lastSeq = Math.max(reached, state.maxSeq);
    }
  }

  // --- Composer -----------------------------------------------------------------

  function showError(text) {
    el.error.textContent = text;
    el.error.hidden = false;
  }

  function clearError() {
    el.error.hidden = true;
    el.error.textContent = "";
  }

  function autosize() {
    el.input.style.height = "auto";
    el.input.style.height = `${Math.min(el.input.scrollHeight + 2, 168)}px`;
  }

  function updateComposer() {
    const text = el.input.value.trim();
    const length = characters(text);
    const left = MAX_LENGTH - length;
    // Files count only for a new message; one waits for every file still uploading.
    const editing = actions.editing();
    const files = editing ? 0 : uploads.ready().length;
    // Offline too: what is sent then waits in the outbox.
    el.send.disabled = (length === 0 && files === 0) || left < 0 || (!editing && uploads.busy());
    if (left <= COUNTER_FROM) {
      el.counter.textContent = left >= 0 ? `${left} characters left` : `${-left} over the ${MAX_LENGTH}-character limit`;
      el.counter.dataset.over = String(left < 0);
    } else {
      el.counter.textContent = "";
      el.counter.dataset.over = "false";
    }
  }

  function submit() {
    const text = el.input.value.trim();
    const editing = actions.editing();
    if (!editing && uploads.busy()) {
      showError("Wait until your files are uploaded, or cancel them.");
      return;
    }
    const attachments = editing ? [] : uploads.ready();
    if (!text && !attachments.length) {
      if (editing) showError("Type the new text, or delete the message instead.");
      return;
    }
    if (characters(text) > MAX_LENGTH) {
      showError(`That message is longer than ${MAX_LENGTH} characters. Shorten it or split it.`);
      return;
    }
    clearError();
    typing.sent();
    mentions.close();
    if (actions.editing()) {
      actions.saveEdit(text);
      return;
    }
    state.scrollOnNextOwn = true;
    addPending(outbox.add(text, { reply: actions.replyingTo(), attachments }));
    uploads.clear();
    actions.replied();
    if (state.status !== "online") announce("Not connected: your message is sent once the chat is back online.");
    el.input.value = "";
    autosize();
    updateComposer();
  }

  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
    el.input.focus();
  });

  el.input.addEventListener("keydown", (event) => {
    if (mentions.keydown(event)) return;
    if (event.key === "Escape" && actions.cancel()) {
      event.preventDefault();
      event.stopPropagation();
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey) {
      event.preventDefault();
      submit();
    }
  });

  // The composer's text changed (typed, or a name picked from the mentions list).
  function composerChanged() {
    autosize();
    updateComposer();
    if (!actions.editing()) typing.composing(el.input.value);
  }

  el.input.addEventListener("input", () => {
    composerChanged();
    mentions.update();
  });

  // --- Scrolling ------------------------------------------------------------------

  el.messages.addEventListener("scroll", () => {
    state.atBottom = nearBottom();
    if (state.atBottom) {
      state.unread = 0;
      el.newMessages.hidden = true;
    }
  });

  // A reader at the newest message stays there when a message grows (reactions, an edit) or
  // the list's box shrinks (a reply's quote above the composer, a taller composer).
  if (window.ResizeObserver) {
    const keepBottom = new ResizeObserver(() => {
      if (state.atBottom) el.messages.scrollTop = el.messages.scrollHeight;
    });
    keepBottom.observe(el.messages);
    keepBottom.observe(el.list);
  }

  el.newMessages.addEventListener("click", () => {
    scrollToBottom();
    el.input.focus();
  });

  // Keep the composer above an on-screen keyboard where `dvh` alone does not.
  const viewport = window.visualViewport;
  if (viewport) {
    const fit = () => {
      if (Math.abs(viewport.scale - 1) > 0.01) return;
      const stick = nearBottom();
      document.documentElement.style.setProperty("--app-height", `${Math.round(viewport.height)}px`);
      if (stick) scrollToBottom();
    };
    viewport.addEventListener("resize", fit);
    fit();
  }

  // --- Members drawer -------------------------------------------------------------

  el.membersToggle.addEventListener("click", () => {
    if (el.app.classList.contains("drawer-open")) closeDrawer();
    else openDrawer();
  });
  el.membersClose.addEventListener("click", () => closeDrawer());
  el.backdrop.addEventListener("click", () => closeDrawer());
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeDrawer();
  });

  // --- Name ------------------------------------------------------------------------

  function cleanName(raw) {
    // The server's rule: no control characters, trimmed, at most nameMaxLength characters.
    const text = Array.from(String(raw).replace(/\p{Cc}/gu, "").trim());
    return text.slice(0, Number(config.nameMaxLength) || 32).join("").trim();
  }

  function renderName() {
    const name = state.displayName || state.chosenName || "You";
    el.nameText.textContent = name;
    el.nameAvatar.textContent = initialOf(name);
    el.nameAvatar.style.setProperty("--hue", String(hueOf(name)));
  }

  el.nameButton.addEventListener("click", () => {
    el.nameInput.value = state.chosenName || state.displayName;
    el.nameError.hidden = true;
    el.nameDialog.showModal();
    el.nameInput.select();
  });

  el.nameForm.addEventListener("submit", (event) => {
    const name = cleanName(el.nameInput.value);
    if (!name) {
      event.preventDefault();
      el.nameError.textContent = "Type a name, up to 32 characters.";
      el.nameError.hidden = false;
      el.nameInput.focus();
      return;
    }
    const changed = name !== state.chosenName;
    state.chosenName = name;
    storage.set(KEYS.name, name);
    if (changed && name !== state.displayName) {
      state.displayName = name;
      renderName();
      reconnectNow();
    }
  });

  // --- Rooms ------------------------------------------------------------------------

  function roomHref(room) {
    if (room === config.defaultRoom) return config.lobbyUrl;
    return config.roomUrl.replace(config.roomPlaceholder, encodeURIComponent(room));
  }

  function rememberRoom() {
    const rooms = [config.room, ...storage.list(KEYS.rooms).filter((room) => room !== config.room)];
    storage.set(KEYS.rooms, JSON.stringify(rooms.filter((room) => ROOM_PATTERN.test(room)).slice(0, 8)));
  }

  function renderRooms() {
    const rooms = storage.list(KEYS.rooms).filter((room) => ROOM_PATTERN.test(room));
    if (!rooms.includes(config.defaultRoom)) rooms.push(config.defaultRoom);
    el.roomList.replaceChildren(
      ...rooms.map((room) => {
        const item = make("li");
        const link = make("a", "", `#${room}`);
        link.href = roomHref(room);
        if (room === config.room) link.setAttribute("aria-current", "page");
        item.append(link);
        return item;
      }),
    );
  }

  el.roomButton.addEventListener("click", () => {
    renderRooms();
    el.roomInput.value = "";
    el.roomError.hidden = true;
    el.roomDialog.showModal();
    el.roomInput.focus();
  });

  el.roomForm.addEventListener("submit", (event) => {
    const room = el.roomInput.value.trim().replace(/^#/, "");
    if (!ROOM_PATTERN.test(room)) {
      event.preventDefault();
      el.roomError.textContent = room
        ? "Room names use only letters, digits, - and _, up to 64 of them."
        : "Type the name of a room.";
      el.roomError.hidden = false;
      el.roomInput.focus();
      return;
    }
    window.location.assign(roomHref(room));
  });

  for (const button of document.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }

  // --- Start ---------------------------------------------------------------------------

  el.reconnect.addEventListener("click", reconnectNow);
  el.earlier.addEventListener("click", loadEarlier);
  for (const type of ACTIVITY_EVENTS) {
    window.addEventListener(
      type,
      () => {
        state.activeAt = Date.now();
        cameBack();
      },
      { capture: true, passive: true },
    );
  }
  window.addEventListener("focus", cameBack);
  document.addEventListener("visibilitychange", cameBack);
  window.addEventListener("online", () => {
    if (state.status !== "online") reconnectNow();
  });
  window.addEventListener("offline", () => {
    if (state.status === "reconnecting") {
      clearRetry();
      setStatus("offline", "Offline: no network. The chat reconnects when it is back.", { action: "Reconnect" });
    }
  });

  state.displayName = state.chosenName;
  renderName();
  renderMembers();
  rememberRoom();
  updateComposer();
  // What this room's outbox kept from before a reload, sent after the first welcome.
  for (const entry of outbox.entries()) addPending(entry);
  connect();
})();
