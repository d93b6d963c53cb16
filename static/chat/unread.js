// While the tab is hidden: the title counts the messages from others ("(3) #lobby · Chat"),
// and, once the person asked for it with the bell button, a mention of them raises a
// notification. Permission is asked for only when the button is pressed, never on load.
"use strict";

window.ChatUnread = (() => {
  const supported = "Notification" in window;

  // `button`: the bell. `storage` has get/set; `key`: where the choice is kept. `room`: for
  // the notification's words. `announce(text)`: for screen readers.
  function create({ button, storage, key, room, announce }) {
    const title = document.title;
    let unread = 0;

    function hidden() {
      return document.visibilityState === "hidden";
    }

    function showTitle() {
      document.title = unread > 0 ? `(${unread}) ${title}` : title;
    }

    function wanted() {
      return supported && Notification.permission === "granted" && storage.get(key) === "on";
    }

    function renderButton() {
      if (!supported) {
        button.hidden = true;
        return;
      }
      const on = wanted();
      button.hidden = false;
      button.setAttribute("aria-pressed", String(on));
      const denied = Notification.permission === "denied";
      button.title = denied
        ? "Notifications are blocked for this site: allow them in the browser's site settings"
        : on
          ? "Notifying you of mentions while this tab is hidden: press to stop"
          : "Notify me when someone mentions me while this tab is hidden";
      button.dataset.permission = Notification.permission;
    }

    async function toggle() {
      if (Notification.permission === "denied") {
        announce("Notifications are blocked for this site. Allow them in the browser's site settings.");
        renderButton();
        return;
      }
      if (wanted()) {
        storage.set(key, "off");
        announce("Notifications off.");
        renderButton();
        return;
      }
      let permission = Notification.permission;
      if (permission === "default") {
        try {
          permission = await Notification.requestPermission();
        } catch {
          permission = Notification.permission;
        }
      }
      if (permission === "granted") {
        storage.set(key, "on");
        announce("Notifications on: you hear of mentions while this tab is hidden.");
      } else {
        announce("Notifications were not allowed.");
      }
      renderButton();
    }

    function notify(name, text) {
      if (!wanted()) return;
      try {
        const notification = new Notification(`${name} mentioned you in #${room}`, {
          body: text.length > 200 ? `${text.slice(0, 200)}…` : text,
          tag: `chat-mention-${room}`,
        });
        notification.addEventListener("click", () => {
          window.focus();
          notification.close();
        });
      } catch {
        // Some browsers (Android Chrome) allow notifications only from a service worker.
      }
    }

    button.addEventListener("click", toggle);
    document.addEventListener("visibilitychange", () => {
      if (hidden()) return;
      unread = 0;
      showTitle();
    });
    renderButton();

    return {
      // A message from someone else arrived (live, or recovered after a drop). `mentionsMe`:
      // it names the reader; `live`: it arrived as it was sent (not recovered).
      arrived({ name, text, mentionsMe, live }) {
        if (!hidden()) return;
        unread += 1;
        showTitle();
        if (mentionsMe && live) notify(name, text);
      },
    };
  }

  return { create };
})();
