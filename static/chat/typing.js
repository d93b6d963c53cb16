// "Ann is typing…": telling the room that this person is writing, and showing who else is.
// The server forwards at most one `typing` frame per sender every 2 s and sends no "stopped":
// a person counts as typing for a few seconds after their last frame, or until their message.
"use strict";

window.ChatTyping = (() => {
  // How often this page says it is typing while the person keeps writing.
  const SEND_EVERY_MS = 3000;
  // The server forwards one typing frame per sender every 2 s and drops the rest: after a
  // message, the next one goes as soon as the server would forward it (a little margin).
  const SERVER_INTERVAL_MS = 2200;
  // How long someone counts as typing after their last frame (longer than SEND_EVERY_MS,
  // so a steady typist does not flicker).
  const SHOWN_FOR_MS = 5000;

  // `line`: the element that shows who is typing (an aria-live region, so its text is what a
  // screen reader hears; it changes only when the set of people does, not with every frame).
  // `send(frame)`: false when offline. `isMine(frame)`: the frame is from this person (another
  // tab of theirs).
  function create({ line, send, isMine }) {
    const typists = new Map(); // connectionId -> { name, timer }
    let sentAt = -Infinity; // when this page last said it was typing
    let nextAt = 0; // when it may say so again

    function render() {
      const names = [...typists.values()].map((typist) => typist.name);
      let text = "";
      if (names.length === 1) text = `${names[0]} is typing…`;
      else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
      else if (names.length > 2) text = "Several people are typing…";
      if (line.textContent !== text) line.textContent = text;
    }

    function stop(connectionId) {
      const typist = typists.get(connectionId);
      if (!typist) return;
      window.clearTimeout(typist.timer);
      typists.delete(connectionId);
      render();
    }

    return {
      // The person changed the composer's text: say so now and then, not on every key.
      composing(text) {
        if (!text.trim()) return;
        const now = Date.now();
        if (now < nextAt) return;
        if (!send({ action: "typing" })) return;
        sentAt = now;
        nextAt = now + SEND_EVERY_MS;
      },
      // Their message went (and cleared their "typing" for the others): the next key says so
      // again as early as the server forwards it.
      sent() {
        nextAt = Math.min(nextAt, sentAt + SERVER_INTERVAL_MS);
      },
      // A `typing` frame from the server.
      received(frame) {
        const id = frame.connectionId;
        if (typeof id !== "string" || isMine(frame)) return;
        const name = typeof frame.name === "string" && frame.name ? frame.name : "Someone";
        const known = typists.get(id);
        if (known) window.clearTimeout(known.timer);
        typists.set(id, { name, timer: window.setTimeout(() => stop(id), SHOWN_FOR_MS) });
        if (!known || known.name !== name) render();
      },
      // A message from that connection arrived, or it left: it is not typing any more.
      stopped(connectionId) {
        stop(connectionId);
      },
      // A new socket: whatever was known about the room's typists is stale.
      reset() {
        for (const typist of typists.values()) window.clearTimeout(typist.timer);
        typists.clear();
        render();
      },
    };
  }

  return { create };
})();
