// The chat page: one WebSocket speaking the documented wire protocol.
// Everything a person or the server wrote reaches the page as text nodes.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("chat-config").textContent);
  const $ = (id) => document.getElementById(id);

  const KEYS = {
    name: "chat.name",
    welcomed: "chat.welcomed",
    rooms: "chat.recentRooms",
    myIds: "chat.myConnectionIds",
  };
  const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
  // Close codes after which reconnecting by itself would only repeat the refusal.
  const FINAL_CLOSES = new Map([
    [4401, "This chat is for signed-in people only. Sign in, then reconnect."],
    [4003, "An operator closed your connection."],
    [1008, "You were disconnected for sending messages too fast."],
  ]);
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
  const ERROR_WORDS = {
    invalid_message: "Type something before sending.",
    frame_too_large: "That message is too large to send.",
    server_error: "The server could not handle that just now. Try again in a moment.",
    bad_json: "The message could not be read by the server. Try again.",
    bad_frame: "The message could not be read by the server. Try again.",
    unknown_action: "The server did not understand that request.",
  };

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
    displayName: "",
    chosenName: storage.get(KEYS.name) || "",
    myIds: new Set(storage.list(KEYS.myIds)),
    members: new Map(),
    seen: new Set(),
    lastId: "",
    lastError: null,
    lastSender: null,
    lastTime: 0,
    unread: 0,
    scrollOnNextOwn: false,
  };

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
      parent.append(text.slice(last, match.index));
      const link = make("a", "", candidate);
      link.href = url.href;
      link.target = "_blank";
      link.rel = "noopener noreferrer nofollow";
      parent.append(link);
      last = match.index + candidate.length;
    }
    parent.append(text.slice(last));
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

  function appendItem(item, { force = false, counts = true } = {}) {
    const stick = force || nearBottom();
    el.list.append(item);
    if (stick) {
      scrollToBottom();
    } else if (counts) {
      state.unread += 1;
      el.newMessagesText.textContent = state.unread === 1 ? "1 new message" : `${state.unread} new messages`;
      el.newMessages.hidden = false;
    }
  }

  function addBubble({ name, text, sentAt, own, automatic, senderKey }) {
    const time = sentAt ? new Date(sentAt).getTime() : Date.now();
    const continued = state.lastSender === senderKey && Math.abs(time - state.lastTime) < GROUP_WINDOW_MS;
    state.lastSender = senderKey;
    state.lastTime = time;

    const item = make("li", "msg");
    if (own) item.classList.add("msg-own");
    if (continued) item.classList.add("msg-continued");
    if (automatic) {
      item.classList.add("msg-auto");
      item.dataset.automatic = "true";
    }
    item.style.setProperty("--hue", String(hueOf(name)));
    item.append(automatic ? avatar("✦", "avatar avatar-auto") : avatar(name));

    const body = make("div", "msg-body");
    const meta = make("div", "msg-meta");
    const who = make("span", "msg-name", own ? "You" : name);
    meta.append(who);
    if (automatic) meta.append(make("span", "badge", "Automatic"));
    meta.append(timeNode(sentAt));
    body.append(meta);

    const bubble = make("div", "bubble");
    if (continued) bubble.append(make("span", "visually-hidden", `${own ? "You" : name}: `));
    const paragraph = make("p", "msg-text");
    appendRichText(paragraph, text);
    bubble.append(paragraph);
    body.append(bubble);
    item.append(body);
    return item;
  }

  function addMessage(frame, { announceIt = true } = {}) {
    if (!frame || typeof frame.id !== "string" || state.seen.has(frame.id)) return;
    if (typeof frame.message !== "string") return;
    state.seen.add(frame.id);
    if (frame.id > state.lastId) state.lastId = frame.id;
    const name = typeof frame.name === "string" && frame.name ? frame.name : "someone";
    const own = state.myIds.has(frame.connectionId);
    const item = addBubble({
      name,
      text: frame.message,
      sentAt: frame.sentAt,
      own,
      automatic: false,
      senderKey: `c:${frame.connectionId}`,
    });
    item.dataset.id = frame.id;
    item.dataset.sender = name;
    const force = own && state.scrollOnNextOwn;
    if (own) state.scrollOnNextOwn = false;
    appendItem(item, { force, counts: !own });
    if (announceIt && !own) announce(`${name}: ${frame.message}`);
  }

  function addEvent(text, sentAt) {
    state.lastSender = null;
    const item = make("li", "event");
    item.append(make("span", "", text));
    item.append(timeNode(sentAt));
    appendItem(item, { counts: false });
  }

  function addNotice(text, sentAt) {
    state.lastSender = null;
    const item = make("li", "notice");
    item.setAttribute("role", "note");
    const label = make("span", "notice-label", "Notice from the operators");
    label.append(" · ", timeNode(sentAt));
    item.append(label, make("p", "", text));
    appendItem(item, { force: true });
    announce(`Notice from the operators: ${text}`);
  }

  function showGuide() {
    if (storage.get(KEYS.welcomed)) return;
    storage.set(KEYS.welcomed, new Date().toISOString());
    GUIDE.forEach((text, index) => {
      const show = () => {
        const item = addBubble({
          name: GUIDE_NAME,
          text,
          sentAt: new Date().toISOString(),
          own: false,
          automatic: true,
          senderKey: "guide",
        });
        appendItem(item, { force: true });
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
    if (state.lastId) params.set("since", state.lastId);
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
    if (state.attempt === 0 && !state.everOnline) setStatus("connecting", "Connecting…");
    else setStatus("reconnecting", "Reconnecting…");
    let socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch {
      scheduleRetry();
      return;
    }
    state.socket = socket;
    state.lastError = null;
    socket.addEventListener("message", (event) => {
      if (state.socket === socket) receive(event.data);
    });
    socket.addEventListener("close", (event) => {
      if (state.socket === socket) closed(event.code);
    });
  }

  function closed(code) {
    state.socket = null;
    if (state.replacing) {
      state.replacing = false;
      state.attempt = 0;
      connect();
      return;
    }
    if (FINAL_CLOSES.has(code)) {
      clearRetry();
      const reason = (state.lastError && state.lastError.message) || FINAL_CLOSES.get(code);
      setStatus("offline", reason, { action: "Reconnect", say: `Disconnected. ${reason}` });
      return;
    }
    if (!navigator.onLine) {
      clearRetry();
      setStatus("offline", "Offline: no network. The chat reconnects when it is back.", {
        action: "Reconnect",
        say: "Connection lost: no network.",
      });
      return;
    }
    scheduleRetry();
  }

  function scheduleRetry() {
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
      setStatus("reconnecting", `Reconnecting in ${seconds} s`, {
        action: "Try now",
        say: null,
      });
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

  function send(text) {
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN) return false;
    state.socket.send(JSON.stringify({ action: "sendMessage", message: text }));
    return true;
  }

  // --- Frames from the server ---------------------------------------------------

  const HANDLERS = {
    welcome(frame) {
      const back = state.everOnline;
      state.me = frame.connectionId;
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
      if (Array.isArray(frame.history)) {
        for (const message of frame.history) addMessage(message, { announceIt: false });
      }
      clearError();
      if (back) addEvent("You are back online.");
      setStatus("online", "Online", { say: back ? "Back online." : null });
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
        state.members.delete(id);
        renderMembers();
        addEvent(`${name} left`);
      }
    },
    message(frame) {
      if (frame.room && frame.room !== config.room) return;
      addMessage(frame);
    },
    system(frame) {
      if (typeof frame.message === "string" && frame.message) addNotice(frame.message, frame.sentAt);
    },
    error(frame) {
      state.lastError = frame;
      const words =
        ERROR_WORDS[frame.code] || (typeof frame.message === "string" && frame.message) || "Something went wrong.";
      const shown = frame.code in ERROR_WORDS || !frame.message ? words : frame.message;
      showError(shown);
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
    state.myIds.add(id);
    const recent = [...state.myIds].slice(-30);
    storage.set(KEYS.myIds, JSON.stringify(recent));
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
    const online = state.status === "online";
    el.send.disabled = !online || length === 0 || left < 0;
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
    if (!text) return;
    if (characters(text) > MAX_LENGTH) {
      showError(`That message is longer than ${MAX_LENGTH} characters. Shorten it or split it.`);
      return;
    }
    if (!send(text)) {
      showError("Not connected right now. Your message is still here; send it when the chat is back online.");
      return;
    }
    clearError();
    state.scrollOnNextOwn = true;
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
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey) {
      event.preventDefault();
      submit();
    }
  });

  el.input.addEventListener("input", () => {
    autosize();
    updateComposer();
  });

  // --- Scrolling ------------------------------------------------------------------

  el.messages.addEventListener("scroll", () => {
    if (nearBottom()) {
      state.unread = 0;
      el.newMessages.hidden = true;
    }
  });

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
  showGuide();
  connect();
})();
