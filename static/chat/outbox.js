// The outbox: messages written on this page that the server has not echoed back yet.
// Each carries a clientMessageId; the server answers a second sendMessage with one it
// already has by sending its original message frame again, and stores nothing new, so
// the outbox may send a message again whenever it cannot tell whether it arrived.
// It keeps its messages in localStorage (one list per room), so a reload loses none.
// A message may answer another: its entry keeps the quote shown with it ({id, name, excerpt}).
// A message may carry uploaded files: its entry keeps them ({key, name, size, type}); with
// files, its text may be empty.
"use strict";

window.ChatOutbox = (() => {
  const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
  const CLIENT_ID_PATTERN = /^[A-Za-z0-9_-]{22,128}$/;
  const MAX_ATTACHMENTS = 10;
  // The one message in flight is sent again when no echo came within this long: past the
  // rate limit the server answers at most one refusal a second, so some go unanswered.
  const ECHO_TIMEOUT_MS = 5000;
  // After a refusal (too fast, or the server could not store it), the wait before sending
  // again: doubling from 1 s to 8 s, a little jittered.
  const RETRY_BASE_MS = 1000;
  const RETRY_CAP_MS = 8000;

  // 128 random bits as URL-safe base64: 22 characters.
  function randomId() {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return window.btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // This browser's sender identity (?clientId=), made once and kept; never shown to anyone.
  function clientId(storage, key) {
    const kept = storage.get(key);
    if (kept && CLIENT_ID_PATTERN.test(kept)) return kept;
    const id = randomId();
    storage.set(key, id);
    return id;
  }

  function valid(entry) {
    return (
      Boolean(entry) &&
      typeof entry.id === "string" &&
      ID_PATTERN.test(entry.id) &&
      typeof entry.text === "string" &&
      (entry.text.length > 0 || entry.attachments !== undefined) &&
      typeof entry.queuedAt === "string" &&
      (entry.reply === undefined || validReply(entry.reply)) &&
      (entry.attachments === undefined || validAttachments(entry.attachments))
    );
  }

  function validAttachments(attachments) {
    return (
      Array.isArray(attachments) &&
      attachments.length > 0 &&
      attachments.length <= MAX_ATTACHMENTS &&
      attachments.every((item) => Boolean(item) && typeof item.key === "string" && item.key.length > 0)
    );
  }

  function validReply(reply) {
    return Boolean(reply) && typeof reply.id === "string" && ID_PATTERN.test(reply.id);
  }

  // The outbox of one room. `storage` has get/set/remove; `send(frame)` returns false when
  // no socket is open. Messages go one at a time, in the order written: the next leaves
  // once the previous one's echo is back, so a refusal always names the message in flight
  // and the room gets them in the order they were typed.
  function create({ storage, key, send }) {
    let queue = read(); // this page's messages not yet echoed, oldest first
    let inFlight = null; // the clientMessageId sent and not yet echoed
    let online = false; // a welcomed socket: the page may send
    let timer = 0;
    let refusals = 0;

    function read() {
      try {
        const value = JSON.parse(storage.get(key) || "[]");
        return Array.isArray(value) ? value.filter(valid) : [];
      } catch {
        return [];
      }
    }

    // Read, change, write: another tab of this room may have changed the list meanwhile.
    function save(change) {
      const list = change(read());
      if (list.length) storage.set(key, JSON.stringify(list));
      else storage.remove(key);
    }

    function wait(ms, then) {
      window.clearTimeout(timer);
      timer = window.setTimeout(() => {
        timer = 0;
        then();
      }, ms);
    }

    function stopWaiting() {
      window.clearTimeout(timer);
      timer = 0;
    }

    function pump() {
      if (!online || inFlight !== null || timer || !queue.length) return;
      const next = queue[0];
      const frame = { action: "sendMessage", message: next.text, clientMessageId: next.id };
      if (next.reply) frame.replyTo = next.reply.id;
      if (next.attachments) frame.attachments = next.attachments.map(({ key }) => ({ key }));
      if (!send(frame)) {
        online = false;
        return;
      }
      inFlight = next.id;
      wait(ECHO_TIMEOUT_MS, () => {
        inFlight = null;
        pump();
      });
    }

    function drop(id) {
      queue = queue.filter((entry) => entry.id !== id);
      save((list) => list.filter((entry) => entry.id !== id));
    }

    return {
      // What is waiting, oldest first (shown as "sending…" after a reload).
      entries() {
        return queue.slice();
      },
      // Keep a new message (a reply when `reply` names the message it answers; with the
      // uploaded files `attachments`) and send it when its turn comes; returns its entry.
      add(text, { reply = null, attachments = [] } = {}) {
        const entry = { id: randomId(), text, queuedAt: new Date().toISOString() };
        if (reply && validReply(reply)) entry.reply = { id: reply.id, name: reply.name, excerpt: reply.excerpt };
        if (validAttachments(attachments)) {
          entry.attachments = attachments.map(({ key, name, size, type }) => ({ key, name, size, type }));
        }
        queue.push(entry);
        save((list) => [...list.filter((item) => item.id !== entry.id), entry]);
        pump();
        return entry;
      },
      // Its echo (live, or in a welcome's or history page's messages) came back: it is sent.
      // True when it was this outbox's.
      acknowledge(id) {
        const known = queue.some((entry) => entry.id === id);
        if (!known) return false;
        drop(id);
        if (id === inFlight) {
          inFlight = null;
          refusals = 0;
          stopWaiting();
        }
        pump();
        return true;
      },
      // The message sent and not yet echoed, or null.
      inFlight() {
        return queue.find((entry) => entry.id === inFlight) || null;
      },
      // A socket was welcomed and its history shown (echoes in it are acknowledged already):
      // send whatever is left, from the oldest.
      connected() {
        online = true;
        inFlight = null;
        refusals = 0;
        stopWaiting();
        pump();
      },
      // The socket is going or gone: nothing is sent until the next welcome.
      pause() {
        online = false;
        inFlight = null;
        stopWaiting();
      },
      // The server refused the message in flight. `final`: sending it again would be refused
      // again (too long, say), so it leaves the outbox; otherwise it goes again after a wait.
      // Returns the entry refused, or null when none was in flight.
      refused({ final = false } = {}) {
        const entry = queue.find((item) => item.id === inFlight) || null;
        if (!entry) return null;
        inFlight = null;
        stopWaiting();
        if (final) {
          drop(entry.id);
          pump();
          return entry;
        }
        refusals += 1;
        const delay = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (refusals - 1));
        wait(Math.round(delay * (1 + Math.random() / 4)), pump);
        return entry;
      },
    };
  }

  return { create, clientId };
})();
