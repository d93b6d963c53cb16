// @mentions: "@" in the composer offers the people online (a listbox: arrow keys and Enter or
// Tab pick, Escape closes, the mouse works), and "@name" in a message is highlighted, more
// strongly when it names the person reading. Names may hold spaces, so "@" is followed by the
// longest known name it starts with, or else by one word.
"use strict";

window.ChatMentions = (() => {
  const WORD = /[\p{L}\p{N}_]/u;
  const MAX_SHOWN = 8;
  // "@" and what follows it up to the caret: the start of a name (names may hold spaces).
  const TYPED = /(?:^|[^\p{L}\p{N}_])@([^@\n]{0,32})$/u;

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function same(a, b) {
    return a.localeCompare(b, undefined, { sensitivity: "accent" }) === 0;
  }

  // `input`: the composer. `listbox`: the element that lists the names offered. `names()`:
  // the names of the people online. `me()`: the reader's name. `onPick()`: the composer's text
  // changed. `announce(text)`: for screen readers.
  function create({ input, listbox, names, me, onPick, announce }) {
    let offered = []; // names in the listbox
    let active = -1;
    let start = -1; // where the "@" being completed is in the composer

    // Every name a mention may be, longest first, so that "@Ann Lee" wins over "@Ann".
    function known() {
      const all = [...new Set([...names(), me()].filter((name) => typeof name === "string" && name.trim()))];
      return all.sort((a, b) => b.length - a.length);
    }

    function nameAt(text, at, candidates) {
      const rest = text.slice(at + 1);
      for (const name of candidates) {
        if (rest.length < name.length || !same(rest.slice(0, name.length), name)) continue;
        if (WORD.test(rest.charAt(name.length))) continue;
        return rest.slice(0, name.length);
      }
      const word = /^\S+/u.exec(rest);
      if (!word) return "";
      return word[0].replace(/[.,;:!?'")\]}]+$/u, "");
    }

    function mentions(text) {
      const found = [];
      const candidates = known();
      for (let at = text.indexOf("@"); at !== -1; at = text.indexOf("@", at + 1)) {
        const previous = found[found.length - 1];
        if (previous && at < previous.end) continue;
        if (at > 0 && WORD.test(text[at - 1])) continue; // an address: ann@example.com
        const name = nameAt(text, at, candidates);
        if (name) found.push({ start: at, end: at + 1 + name.length, name });
      }
      return found;
    }

    function isMe(name) {
      const mine = me();
      return Boolean(mine) && same(name, mine);
    }

    // --- Offering names while typing ---------------------------------------------

    function close() {
      if (!offered.length && listbox.hidden) return;
      offered = [];
      active = -1;
      start = -1;
      listbox.replaceChildren();
      listbox.hidden = true;
      input.removeAttribute("aria-activedescendant");
      input.setAttribute("aria-expanded", "false");
    }

    function highlight(index) {
      active = index;
      listbox.querySelectorAll("[role=option]").forEach((option, at) => {
        option.setAttribute("aria-selected", String(at === index));
        if (at === index) {
          input.setAttribute("aria-activedescendant", option.id);
          option.scrollIntoView({ block: "nearest" });
        }
      });
    }

    function pick(index) {
      const name = offered[index];
      if (name === undefined || start < 0) return;
      const caret = input.selectionStart;
      const before = input.value.slice(0, start);
      const after = input.value.slice(caret);
      const inserted = `@${name} `;
      input.value = before + inserted + after.replace(/^ /, "");
      const at = before.length + inserted.length;
      input.setSelectionRange(at, at);
      close();
      onPick();
    }

    function update() {
      if (input.selectionStart !== input.selectionEnd) return close();
      const typed = TYPED.exec(input.value.slice(0, input.selectionStart));
      if (!typed) return close();
      const query = typed[1];
      const mine = me();
      const choices = [...new Set(names())]
        .filter((name) => name && !(mine && same(name, mine)))
        .filter((name) => query.length <= name.length && same(name.slice(0, query.length), query))
        .sort((a, b) => a.localeCompare(b, undefined, { sensitivity: "base" }))
        .slice(0, MAX_SHOWN);
      if (!choices.length || (choices.length === 1 && same(choices[0], query))) return close();
      const opening = listbox.hidden;
      const keep = active >= 0 ? offered[active] : null;
      offered = choices;
      start = input.selectionStart - query.length - 1;
      listbox.replaceChildren(
        ...choices.map((name, index) => {
          const option = make("li", "mention-option");
          option.id = `mention-option-${index}`;
          option.setAttribute("role", "option");
          option.append(make("span", "mention-option-at", "@"), make("span", "", name));
          option.addEventListener("mousedown", (event) => event.preventDefault()); // the composer keeps the focus
          option.addEventListener("click", () => pick(index));
          return option;
        }),
      );
      listbox.hidden = false;
      input.setAttribute("aria-expanded", "true");
      const kept = keep === null ? -1 : choices.indexOf(keep);
      highlight(kept >= 0 ? kept : 0);
      if (opening) {
        announce(choices.length === 1 ? `1 name: ${choices[0]}. Enter picks it.` : `${choices.length} names: arrow keys choose, Enter picks.`);
      }
    }

    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", listbox.id);
    input.setAttribute("aria-expanded", "false");
    input.addEventListener("click", update);
    input.addEventListener("blur", close);
    input.addEventListener("keyup", (event) => {
      if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) update();
    });

    return {
      // The composer's text changed.
      update,
      close,
      // A key in the composer; true when it was the listbox's (the composer must not act on it).
      keydown(event) {
        if (listbox.hidden || !offered.length || event.isComposing) return false;
        if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          const step = event.key === "ArrowDown" ? 1 : -1;
          highlight((active + step + offered.length) % offered.length);
        } else if ((event.key === "Enter" && !event.shiftKey) || (event.key === "Tab" && !event.shiftKey)) {
          pick(active < 0 ? 0 : active);
        } else if (event.key === "Escape") {
          close();
        } else {
          return false;
        }
        event.preventDefault();
        event.stopPropagation();
        return true;
      },
      // `text` into `parent`, each @mention a highlighted span (text nodes only).
      append(parent, text) {
        let last = 0;
        for (const { start: at, end, name } of mentions(text)) {
          parent.append(text.slice(last, at));
          parent.append(make("span", isMe(name) ? "mention mention-me" : "mention", text.slice(at, end)));
          last = end;
        }
        parent.append(text.slice(last));
      },
      // Whether `text` mentions the reader.
      mentionsMe(text) {
        return mentions(text).some(({ name }) => isMe(name));
      },
    };
  }

  return { create };
})();
