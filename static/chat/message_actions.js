// What a person does to one message: its menu (the "⋯" button that appears on hover or focus,
// or a long press on a touch screen), replying to it, editing it, deleting it; and how a
// message shows an edit, a deletion and the message it replies to.
// The server decides: an edit or a delete shows once its `message_edited` or
// `message_deleted` frame comes back, never before.
"use strict";

window.ChatMessageActions = (() => {
  const LONG_PRESS_MS = 500;
  const LONG_PRESS_SLOP_PX = 10;
  const EXCERPT_LENGTH = 140; // the server's excerpt of a replied-to message
  const HIGHLIGHT_MS = 1600;

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function excerptOf(text) {
    const chars = Array.from(String(text).replace(/\s+/g, " ").trim());
    return chars.length > EXCERPT_LENGTH ? `${chars.slice(0, EXCERPT_LENGTH).join("")}…` : chars.join("");
  }

  // The quote of the message a reply answers ({id, name, excerpt}; excerpt null: deleted).
  // A button: it takes the reader to the original when it is shown.
  function quoteNode(reply) {
    const quote = make("button", "msg-quote");
    quote.type = "button";
    quote.dataset.replyTo = reply.id;
    quote.append(make("span", "visually-hidden", "Reply to "));
    quote.append(make("span", "msg-quote-name", String(reply.name || "someone")));
    quote.append(make("span", "visually-hidden", ": "));
    quote.append(quoteText(reply.excerpt));
    quote.title = "Show the original message";
    return quote;
  }

  function quoteText(excerpt) {
    if (typeof excerpt === "string") return make("span", "msg-quote-text", excerpt);
    return make("span", "msg-quote-text msg-quote-deleted", "message deleted");
  }

  /*
   * `list`: the message list. `composer`: {input, send, sendLabel, context, contextLabel,
   * contextText, contextCancel}. `dialog`: the delete confirmation ({dialog, preview}).
   * `send(frame)`: false when offline. `renderText(node, text)`: a message's text as nodes.
   * `canEdit(item)`, `canDelete(item)`: what this person may do to that message now.
   * `openPicker(item, opener)`: the reaction picker. `onComposerChange()`: the composer's
   * text or mode changed. `onError(text)`, `announce(text)`: words for the person.
   */
  function create({ list, composer, dialog, send, renderText, canEdit, canDelete, openPicker, onComposerChange, onError, announce }) {
    let menu = null; // { node, item, button }
    let mode = null; // { kind: "reply", id, name, excerpt } or { kind: "edit", id, draft }
    let deleting = null; // the item the delete dialog asks about
    let press = null; // a touch held on a message: { timer, x, y, item }
    let pressed = false; // a long press just opened a menu: the click that follows does nothing

    // --- The menu ---------------------------------------------------------------

    function menuItem(label, action) {
      const button = make("button", "msg-menu-item", label);
      button.type = "button";
      button.setAttribute("role", "menuitem");
      button.tabIndex = -1;
      button.addEventListener("click", () => {
        const { item, button: opener } = menu;
        closeMenu();
        action(item, opener);
      });
      return button;
    }

    function openMenu(item, { focusFirst = true } = {}) {
      closeMenu();
      const button = item.querySelector(".msg-menu-button");
      if (!button) return;
      const node = make("div", "msg-menu");
      node.setAttribute("role", "menu");
      node.setAttribute("aria-label", `Message from ${item.dataset.who}`);
      node.id = `msg-menu-${item.dataset.id}`;
      node.append(menuItem("Reply", startReply));
      node.append(menuItem("React…", (target, opener) => openPicker(target, opener)));
      if (canEdit(item)) node.append(menuItem("Edit", startEdit));
      if (canDelete(item)) {
        const remove = menuItem("Delete", askDelete);
        remove.classList.add("msg-menu-danger");
        node.append(remove);
      }
      node.addEventListener("keydown", menuKeys);
      button.after(node);
      button.setAttribute("aria-expanded", "true");
      button.setAttribute("aria-controls", node.id);
      item.classList.add("msg-menu-open");
      menu = { node, item, button };
      // Open upwards when there is no room below it in the message list.
      const box = item.closest(".messages") || document.documentElement;
      if (node.getBoundingClientRect().bottom > box.getBoundingClientRect().bottom) node.classList.add("msg-menu-up");
      if (focusFirst) node.querySelector("[role=menuitem]").focus();
    }

    function closeMenu({ restoreFocus = false } = {}) {
      if (!menu) return;
      const { node, item, button } = menu;
      menu = null;
      node.remove();
      item.classList.remove("msg-menu-open");
      button.setAttribute("aria-expanded", "false");
      button.removeAttribute("aria-controls");
      if (restoreFocus && button.isConnected) button.focus();
    }

    function menuKeys(event) {
      const items = [...menu.node.querySelectorAll("[role=menuitem]")];
      const at = items.indexOf(document.activeElement);
      let next = null;
      if (event.key === "ArrowDown") next = items[(at + 1) % items.length];
      else if (event.key === "ArrowUp") next = items[(at - 1 + items.length) % items.length];
      else if (event.key === "Home") next = items[0];
      else if (event.key === "End") next = items[items.length - 1];
      else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        closeMenu({ restoreFocus: true });
        return;
      } else if (event.key === "Tab") {
        closeMenu();
        return;
      }
      if (next) {
        event.preventDefault();
        next.focus();
      }
    }

    // The "⋯" button of a message the page shows (not one on its way, not a tombstone).
    function attach(item) {
      const button = make("button", "msg-menu-button");
      button.type = "button";
      button.setAttribute("aria-haspopup", "menu");
      button.setAttribute("aria-expanded", "false");
      button.setAttribute("aria-label", `Actions for the message from ${item.dataset.who}`);
      button.title = "Reply, react, edit or delete";
      const dots = make("span", "", "⋯");
      dots.setAttribute("aria-hidden", "true");
      button.append(dots);
      button.addEventListener("click", () => {
        if (menu && menu.item === item) closeMenu();
        else openMenu(item);
      });
      button.addEventListener("keydown", (event) => {
        if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          event.preventDefault();
          openMenu(item);
        }
      });
      item.querySelector(".bubble").append(button);
    }

    document.addEventListener("pointerdown", (event) => {
      if (menu && !menu.node.contains(event.target) && !menu.button.contains(event.target)) closeMenu();
    });

    // A long press on a message opens its menu on a touch screen.
    list.addEventListener("pointerdown", (event) => {
      if (event.pointerType !== "touch") return;
      const item = event.target.closest(".msg[data-id]");
      if (!item || !item.querySelector(".msg-menu-button") || !event.target.closest(".bubble")) return;
      if (event.target.closest(".msg-menu, .msg-menu-button")) return;
      cancelPress();
      press = {
        item,
        x: event.clientX,
        y: event.clientY,
        timer: window.setTimeout(() => {
          press = null;
          pressed = true;
          openMenu(item);
          if (navigator.vibrate) navigator.vibrate(10);
        }, LONG_PRESS_MS),
      };
    });
    list.addEventListener("pointermove", (event) => {
      if (press && Math.hypot(event.clientX - press.x, event.clientY - press.y) > LONG_PRESS_SLOP_PX) cancelPress();
    });
    for (const type of ["pointerup", "pointercancel"]) list.addEventListener(type, cancelPress);
    list.addEventListener("contextmenu", (event) => {
      if (press || pressed) event.preventDefault();
    });
    list.addEventListener(
      "click",
      (event) => {
        if (!pressed) return;
        pressed = false;
        if (menu && menu.node.contains(event.target)) return;
        event.preventDefault();
        event.stopPropagation();
      },
      { capture: true },
    );

    function cancelPress() {
      if (!press) return;
      window.clearTimeout(press.timer);
      press = null;
    }

    // --- Reply and edit: the composer's mode ---------------------------------------

    function textOf(item) {
      const text = item.querySelector(".msg-text");
      return text ? text.textContent : "";
    }

    // What a quote or the delete dialog shows of a message: its text, or the names of its files.
    function summaryOf(item) {
      const text = textOf(item);
      if (text) return text;
      const names = [...item.querySelectorAll(".msg-attachments [data-key]")].map((node) => {
        const image = node.querySelector("img");
        return image ? image.alt : node.querySelector(".attachment-name").textContent;
      });
      return names.length ? `📎 ${names.join(", ")}` : "";
    }

    // The paragraph of a message's text; a message that was only files gets one when edited.
    function textNode(item) {
      let text = item.querySelector(".msg-text");
      if (!text) {
        text = make("p", "msg-text");
        const bubble = item.querySelector(".bubble");
        const before = bubble.querySelector(":scope > .msg-attachments, :scope > .msg-menu-button");
        if (before) before.before(text);
        else bubble.append(text);
      }
      return text;
    }

    function showMode(label, text) {
      composer.contextLabel.textContent = label;
      composer.contextText.textContent = text;
      composer.context.hidden = false;
      composer.sendLabel.textContent = mode.kind === "edit" ? "Save" : "Send";
      composer.context.dataset.kind = mode.kind;
    }

    function startReply(item) {
      endMode();
      mode = { kind: "reply", id: item.dataset.id, name: item.dataset.sender, excerpt: excerptOf(summaryOf(item)) };
      showMode(`Replying to ${item.dataset.who === "You" ? "yourself" : item.dataset.sender}`, mode.excerpt);
      composer.contextCancel.setAttribute("aria-label", "Cancel the reply");
      composer.input.focus();
      onComposerChange();
    }

    function startEdit(item) {
      const draft = mode && mode.kind === "edit" ? mode.draft : composer.input.value;
      endMode();
      mode = { kind: "edit", id: item.dataset.id, draft };
      showMode("Editing your message", "Enter saves · Escape cancels");
      composer.contextCancel.setAttribute("aria-label", "Cancel the edit");
      composer.input.value = textOf(item);
      composer.input.focus();
      composer.input.setSelectionRange(composer.input.value.length, composer.input.value.length);
      onComposerChange();
    }

    // Back to writing a new message; an edit gives back what was being written before it.
    function endMode() {
      if (!mode) return false;
      const ended = mode;
      mode = null;
      composer.context.hidden = true;
      delete composer.context.dataset.kind;
      composer.sendLabel.textContent = "Send";
      if (ended.kind === "edit") composer.input.value = ended.draft;
      onComposerChange();
      return true;
    }

    composer.contextCancel.addEventListener("click", () => {
      endMode();
      composer.input.focus();
    });

    // --- Delete ------------------------------------------------------------------

    function askDelete(item) {
      deleting = item;
      dialog.preview.textContent = `${item.dataset.who}: ${excerptOf(summaryOf(item))}`;
      dialog.dialog.returnValue = "";
      dialog.dialog.showModal();
    }

    dialog.dialog.addEventListener("close", () => {
      const item = deleting;
      deleting = null;
      if (!item) return;
      if (dialog.dialog.returnValue === "delete") {
        if (!send({ action: "deleteMessage", messageId: item.dataset.id })) {
          onError("Not connected right now. Delete it once the chat is back online.");
        }
      }
      const button = item.querySelector(".msg-menu-button");
      if (button) button.focus();
      else composer.input.focus();
    });

    // --- A quote takes the reader to the original -------------------------------

    list.addEventListener("click", (event) => {
      const quote = event.target.closest(".msg-quote");
      if (!quote) return;
      const original = list.querySelector(`.msg[data-id="${CSS.escape(quote.dataset.replyTo)}"]`);
      if (!original) {
        announce("The original message is not shown here. Load earlier messages to find it.");
        quote.title = "The original message is not shown here (load earlier messages)";
        return;
      }
      const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      original.scrollIntoView({ block: "center", behavior: still ? "auto" : "smooth" });
      original.classList.remove("msg-highlight");
      // Restart the highlight when it is asked for again before it faded.
      void original.offsetWidth;
      original.classList.add("msg-highlight");
      window.setTimeout(() => original.classList.remove("msg-highlight"), HIGHLIGHT_MS);
      original.tabIndex = -1;
      original.focus({ preventScroll: true });
    });

    // --- How a message shows its changes -------------------------------------------

    function quotesOf(id) {
      return list.querySelectorAll(`.msg-quote[data-reply-to="${CSS.escape(id)}"]`);
    }

    function markEdited(item, editedAt) {
      let marker = item.querySelector(".msg-edited");
      if (!marker) {
        marker = make("span", "msg-edited", "(edited)");
        textNode(item).after(marker);
      }
      const when = editedAt ? new Date(editedAt) : null;
      if (when && !Number.isNaN(when.getTime())) marker.title = `Edited ${when.toLocaleString()}`;
    }

    return {
      attach,
      closeMenu,
      quoteNode,
      // The composer's mode: null, or what it replies to or edits.
      mode() {
        return mode;
      },
      // What a new message answers ({id, name, excerpt}), or null.
      replyingTo() {
        return mode && mode.kind === "reply" ? { id: mode.id, name: mode.name, excerpt: mode.excerpt } : null;
      },
      editing() {
        return Boolean(mode && mode.kind === "edit");
      },
      // Escape in the composer: out of a reply or an edit. True when there was one.
      cancel() {
        return endMode();
      },
      // The reply was sent (the outbox has it).
      replied() {
        if (mode && mode.kind === "reply") endMode();
      },
      // Enter while editing: send the new text (unchanged text sends nothing).
      saveEdit(text) {
        const { id } = mode;
        const item = list.querySelector(`.msg[data-id="${CSS.escape(id)}"]`);
        if (item && textOf(item) !== text && !send({ action: "editMessage", messageId: id, message: text })) {
          onError("Not connected right now. Edit it once the chat is back online.");
          return false;
        }
        endMode();
        return true;
      },
      // The message's text is now `message` (a `message_edited` frame, or a newer copy).
      showEdit(item, { message, editedAt }) {
        const text = textNode(item);
        text.replaceChildren();
        renderText(text, message);
        markEdited(item, editedAt);
        for (const quote of quotesOf(item.dataset.id)) {
          quote.querySelector(".msg-quote-text").replaceWith(quoteText(excerptOf(message)));
        }
        if (mode && mode.kind === "reply" && mode.id === item.dataset.id) {
          mode.excerpt = excerptOf(message);
          composer.contextText.textContent = mode.excerpt;
        }
      },
      markEdited,
      // The message was deleted: a tombstone, no text, no menu.
      showDeleted(item) {
        if (menu && menu.item === item) closeMenu();
        if (deleting === item && dialog.dialog.open) dialog.dialog.close();
        item.classList.add("msg-deleted");
        item.dataset.deleted = "true";
        const bubble = item.querySelector(".bubble");
        const prefix = bubble.querySelector(".msg-prefix");
        bubble.replaceChildren(...(prefix ? [prefix] : []), make("p", "msg-tombstone", "message deleted"));
        const button = item.querySelector(".msg-menu-button");
        if (button) button.remove();
        for (const quote of quotesOf(item.dataset.id)) quote.querySelector(".msg-quote-text").replaceWith(quoteText(null));
        if (mode && mode.id === item.dataset.id) {
          endMode();
          onError("That message was deleted.");
        }
      },
    };
  }

  return { create, excerptOf };
})();
