// Reactions under a message: a chip per emoji with its count, and a small picker.
// A tap on a chip (or a pick) sends `react`, which toggles this person's reaction; what the
// page shows comes only from the server's frames (`reactions` in a message, `reaction`).
"use strict";

window.ChatReactions = (() => {
  const COMMON = ["👍", "❤️", "😂", "🎉", "😮", "😢"];
  const graphemes = window.Intl && Intl.Segmenter ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // One emoji (one grapheme that is a pictograph, a flag or a keycap): what the server takes.
  function oneEmoji(text) {
    const value = text.trim();
    if (!value || !/\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3/u.test(value)) return false;
    return graphemes ? Array.from(graphemes.segment(value)).length === 1 : Array.from(value).length <= 2;
  }

  // `send(frame)`: false when offline. `onError(text)`: words for the person.
  function create({ send, onError }) {
    // What this page knows this person added, by message id: from `reaction` frames whose
    // sender is theirs. A reload forgets it; the counts stay right either way.
    const mine = new Map();
    let picker = null; // { node, item, opener }

    function mineOf(id) {
      return mine.get(id) || new Set();
    }

    function toggle(item, emoji) {
      if (!send({ action: "react", messageId: item.dataset.id, emoji })) {
        onError("Not connected right now. Try again once the chat is back online.");
      }
    }

    function chip(item, emoji, count, pressed) {
      const button = make("button", "reaction");
      button.type = "button";
      button.dataset.emoji = emoji;
      button.setAttribute("aria-pressed", String(pressed));
      button.setAttribute("aria-label", `${emoji} ${count} ${count === 1 ? "reaction" : "reactions"}`);
      button.title = pressed ? `You reacted with ${emoji}: take it back` : `React with ${emoji}`;
      const face = make("span", "reaction-emoji", emoji);
      face.setAttribute("aria-hidden", "true");
      const number = make("span", "reaction-count", String(count));
      number.setAttribute("aria-hidden", "true");
      button.append(face, number);
      button.addEventListener("click", () => toggle(item, emoji));
      return button;
    }

    // The chips of one message, from its counts ({emoji: count}).
    function show(item, reactions) {
      const id = item.dataset.id;
      const counts = Object.entries(reactions && typeof reactions === "object" ? reactions : {}).filter(
        ([emoji, count]) => typeof emoji === "string" && Number.isSafeInteger(count) && count > 0,
      );
      const own = mineOf(id);
      for (const emoji of [...own]) if (!counts.some(([shown]) => shown === emoji)) own.delete(emoji);
      let row = item.querySelector(".msg-reactions");
      if (!counts.length) {
        if (row) row.remove();
        return;
      }
      if (!row) {
        row = make("div", "msg-reactions");
        row.setAttribute("role", "group");
        row.setAttribute("aria-label", "Reactions");
        item.querySelector(".bubble").after(row);
      }
      const chips = counts.map(([emoji, count]) => chip(item, emoji, count, own.has(emoji)));
      const more = make("button", "reaction reaction-add");
      more.type = "button";
      more.setAttribute("aria-label", "Add a reaction");
      more.title = "Add a reaction";
      more.setAttribute("aria-haspopup", "true");
      const plus = make("span", "reaction-emoji", "+");
      plus.setAttribute("aria-hidden", "true");
      more.append(plus);
      more.addEventListener("click", () => openPicker(item, more));
      row.replaceChildren(...chips, more);
    }

    function closePicker({ restoreFocus = false } = {}) {
      if (!picker) return;
      const { node, opener } = picker;
      picker = null;
      node.remove();
      if (restoreFocus && opener && opener.isConnected) opener.focus();
    }

    // The six common emoji, and a field for any other one.
    function openPicker(item, opener) {
      closePicker();
      const node = make("div", "reaction-picker");
      node.setAttribute("role", "group");
      node.setAttribute("aria-label", "React with");
      const own = mineOf(item.dataset.id);
      const row = make("div", "reaction-picker-row");
      for (const emoji of COMMON) {
        const button = make("button", "reaction-choice", emoji);
        button.type = "button";
        button.setAttribute("aria-label", `React with ${emoji}`);
        button.setAttribute("aria-pressed", String(own.has(emoji)));
        button.addEventListener("click", () => {
          closePicker({ restoreFocus: true });
          toggle(item, emoji);
        });
        row.append(button);
      }
      const form = make("form", "reaction-other");
      const field = make("input", "reaction-other-input");
      field.type = "text";
      field.maxLength = 32;
      field.autocomplete = "off";
      field.placeholder = "Other emoji";
      field.setAttribute("aria-label", "Another emoji");
      const add = make("button", "reaction-other-add", "Add");
      add.type = "submit";
      const problem = make("p", "reaction-other-error");
      problem.hidden = true;
      form.append(field, add);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const emoji = field.value.trim();
        if (!oneEmoji(emoji)) {
          problem.textContent = "Type one emoji, for example 🙌.";
          problem.hidden = false;
          field.focus();
          return;
        }
        closePicker({ restoreFocus: true });
        toggle(item, emoji);
      });
      node.append(row, form, problem);
      node.addEventListener("keydown", (event) => {
        if (event.key === "Escape") {
          event.preventDefault();
          event.stopPropagation();
          closePicker({ restoreFocus: true });
        }
      });
      const after = item.querySelector(".msg-reactions") || item.querySelector(".bubble");
      after.after(node);
      picker = { node, item, opener };
      node.scrollIntoView({ block: "nearest" });
      row.firstElementChild.focus();
    }

    // A click or tap outside the picker closes it.
    document.addEventListener("pointerdown", (event) => {
      if (!picker) return;
      if (picker.node.contains(event.target) || (picker.opener && picker.opener.contains(event.target))) return;
      closePicker();
    });

    return {
      show,
      openPicker,
      closePicker,
      // A `reaction` frame the page applied. `own`: its sender is this person.
      applied(item, frame, { own }) {
        const id = item.dataset.id;
        if (own && typeof frame.emoji === "string") {
          const set = mineOf(id);
          if (frame.added) set.add(frame.emoji);
          else set.delete(frame.emoji);
          mine.set(id, set);
        }
        show(item, frame.reactions);
      },
      // The message was deleted: no reactions any more.
      clear(item) {
        if (picker && picker.item === item) closePicker();
        mine.delete(item.dataset.id);
        const row = item.querySelector(".msg-reactions");
        if (row) row.remove();
      },
    };
  }

  return { create, COMMON, oneEmoji };
})();
