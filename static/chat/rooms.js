// The room directory: filters as the person types, and keeps the counts current.
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("directory-config").textContent);
  const list = document.getElementById("room-directory");
  const search = document.getElementById("room-search");
  const status = document.getElementById("directory-status");
  let rooms = [...list.querySelectorAll(".room-entry")].map((item) => ({
    room: item.dataset.room,
    count: Number(item.querySelector(".room-count").textContent),
  }));

  function roomUrl(room) {
    return config.roomUrl.replace(config.roomPlaceholder, encodeURIComponent(room));
  }

  function render() {
    const needle = search.value.trim().toLowerCase();
    const shown = rooms.filter(({ room }) => room.toLowerCase().includes(needle));
    const items = shown.map(({ room, count }) => {
      const item = document.createElement("li");
      item.className = "room-entry";
      item.dataset.room = room;
      const link = document.createElement("a");
      link.href = roomUrl(room);
      const hash = document.createElement("span");
      hash.setAttribute("aria-hidden", "true");
      hash.textContent = "#";
      link.append(hash, room);
      const number = document.createElement("span");
      number.className = "room-count";
      number.textContent = String(count);
      const words = document.createElement("span");
      words.className = "visually-hidden";
      words.textContent = count === 1 ? " person now" : " people now";
      item.append(link, number, words);
      return item;
    });
    list.replaceChildren(...items);
    if (shown.length) status.textContent = `${shown.length} room${shown.length === 1 ? "" : "s"}`;
    else if (needle) status.textContent = `No room with people in it matches “${search.value.trim()}”.`;
    else status.textContent = "Nobody is chatting right now.";
  }

  async function refresh() {
    try {
      const response = await fetch("?format=json", { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const body = await response.json();
      if (Array.isArray(body.rooms)) {
        rooms = body.rooms;
        render();
      }
    } catch {
      // Offline for a moment: the next refresh tries again.
    }
  }

  search.form.addEventListener("submit", (event) => event.preventDefault());
  search.addEventListener("input", render);
  window.setInterval(() => {
    if (document.visibilityState === "visible") refresh();
  }, config.refreshSeconds * 1000);
})();
