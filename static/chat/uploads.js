// Files and images in messages (docs/uploads.md). The paperclip, a drop onto the conversation
// or an image pasted into the composer put files in the tray above the composer; each is
// signed by `POST /api/uploads/` and goes straight to S3 as a presigned POST, its progress in
// its chip. The next message carries the finished ones' keys. A message's `attachments` show
// as thumbnails (raster images only) or as download cards; nothing else is ever shown inline.
"use strict";

window.ChatUploads = (() => {
  const MAX_ATTACHMENTS = 10; // the server's limit per message
  // The only types shown inline: anything else (SVG and HTML too) is a download.
  const INLINE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
  const SVG = "http://www.w3.org/2000/svg";
  const CROSS =
    "M5.3 5.3a1 1 0 0 1 1.4 0L10 8.6l3.3-3.3a1 1 0 1 1 1.4 1.4L11.4 10l3.3 3.3a1 1 0 0 1-1.4 1.4L10 11.4l-3.3 3.3a1 1 0 0 1-1.4-1.4L8.6 10 5.3 6.7a1 1 0 0 1 0-1.4z";
  // What the signing endpoint's refusals mean for the person (`name`: the file's).
  const REFUSALS = {
    bad_request: (name) => `“${name}” could not be uploaded. Try again.`,
    invalid_token: () => "This page may not upload files any more. Reload it, then attach the file again.",
    too_large: (name) => `“${name}” is too large to send.`,
    type_not_allowed: (name) => `Files like “${name}” cannot be sent here.`,
    rate_limited: () => "You are uploading files faster than this chat allows. Wait a minute, then try again.",
    uploads_unavailable: () => "Files cannot be sent in this chat right now.",
  };

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // 48213 → "47 KB".
  function humanSize(bytes) {
    if (!Number.isSafeInteger(bytes) || bytes < 0) return "";
    if (bytes < 1024) return bytes === 1 ? "1 byte" : `${bytes} bytes`;
    const units = ["KB", "MB", "GB"];
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
  }

  // "report.final.pdf" → "PDF": a label for a file's icon.
  function extensionOf(name) {
    const match = /\.([A-Za-z0-9]{1,4})$/.exec(name);
    return match ? match[1].toUpperCase() : "FILE";
  }

  function baseType(type) {
    return typeof type === "string" ? type.split(";")[0].trim().toLowerCase() : "";
  }

  // An http(s) URL, or null: a server's `url` never becomes a javascript: or data: link.
  function safeUrl(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      const url = new URL(value, window.location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch {
      return null;
    }
  }

  // The attachments of a frame (or an outbox entry) that can be shown, at most ten.
  function valid(attachments) {
    if (!Array.isArray(attachments)) return [];
    return attachments
      .filter((item) => item && typeof item === "object" && typeof item.key === "string" && item.key)
      .slice(0, MAX_ATTACHMENTS)
      .map((item) => ({
        key: item.key,
        name: typeof item.name === "string" && item.name ? item.name : item.key.split("/").pop() || "file",
        size: Number.isSafeInteger(item.size) ? item.size : null,
        type: baseType(item.type),
        url: safeUrl(item.url),
      }));
  }

  // --- How a message shows its files --------------------------------------------------

  // A thumbnail that opens the full image in a new tab; a card if the image cannot be loaded.
  function imageNode(attachment) {
    const link = make("a", "attachment attachment-image");
    link.dataset.key = attachment.key;
    link.href = attachment.url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.title = `Open ${attachment.name} full size`;
    const image = make("img");
    image.alt = attachment.name;
    image.loading = "lazy";
    image.decoding = "async";
    image.referrerPolicy = "no-referrer";
    image.src = attachment.url;
    image.addEventListener("error", () => link.replaceWith(fileNode(attachment)), { once: true });
    link.append(image);
    return link;
  }

  // The file's name (as text), its size and a download link (none while it is on its way).
  function fileNode(attachment) {
    const card = make("div", "attachment attachment-file");
    card.dataset.key = attachment.key;
    const icon = make("span", "attachment-icon", extensionOf(attachment.name));
    icon.setAttribute("aria-hidden", "true");
    const info = make("span", "attachment-info");
    const name = make("span", "attachment-name", attachment.name);
    name.title = attachment.name; // shortened on screen when long
    info.append(name);
    const size = humanSize(attachment.size);
    if (size) info.append(make("span", "attachment-size", size));
    card.append(icon, info);
    if (attachment.url) {
      const link = make("a", "attachment-download");
      link.href = attachment.url;
      link.setAttribute("download", attachment.name);
      link.rel = "noopener noreferrer";
      link.append("Download", make("span", "visually-hidden", ` ${attachment.name}`));
      card.append(link);
    }
    return card;
  }

  // The files of a message, or null when it has none.
  function render(attachments) {
    const files = valid(attachments);
    if (!files.length) return null;
    const box = make("div", "msg-attachments");
    for (const attachment of files) {
      box.append(attachment.url && INLINE_TYPES.has(attachment.type) ? imageNode(attachment) : fileNode(attachment));
    }
    return box;
  }

  // A newer copy of the message (history, a welcome) brings fresh presigned URLs: use them.
  function refresh(box, attachments) {
    if (!box) return;
    for (const attachment of valid(attachments)) {
      if (!attachment.url) continue;
      const node = [...box.querySelectorAll("[data-key]")].find((found) => found.dataset.key === attachment.key);
      if (!node) continue;
      for (const link of node.matches("a") ? [node] : node.querySelectorAll("a")) {
        if (link.href !== attachment.url) link.href = attachment.url;
      }
      const image = node.querySelector("img");
      if (image && image.src !== attachment.url) image.src = attachment.url;
    }
  }

  // "a file: photo.png" or "3 files: a.png, b.pdf, c.zip", for what screen readers hear.
  function describe(attachments) {
    const files = valid(attachments);
    if (!files.length) return "";
    const names = files.map((file) => file.name).join(", ");
    return files.length === 1 ? `a file: ${names}` : `${files.length} files: ${names}`;
  }

  // --- The tray: files on their way to the bucket ---------------------------------------

  // The composer's "×", as the page's other cancel buttons draw it.
  function crossIcon() {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("viewBox", "0 0 20 20");
    svg.setAttribute("width", "16");
    svg.setAttribute("height", "16");
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", CROSS);
    svg.append(path);
    return svg;
  }

  function csrfToken() {
    const found = document.cookie.split(";").find((part) => part.trim().startsWith("csrftoken="));
    return found ? decodeURIComponent(found.trim().slice("csrftoken=".length)) : null;
  }

  function hasFiles(event) {
    return Boolean(event.dataTransfer) && [...event.dataTransfer.types].includes("Files");
  }

  /*
   * `button`: the paperclip; `picker`: the hidden file input; `tray`: the list of chips above
   * the composer; `dropZone`: where files may be dropped, `hint` shown over it while dragging;
   * `input`: the composer's text box (pastes). `endpoint`: the signing URL. `onChange()`: what
   * can be sent changed. `onError(text)`, `announce(text)`: words for the person.
   */
  function create({ button, picker, tray, dropZone, hint, input, endpoint, onChange, onError, announce }) {
    let token = null; // the welcome's uploadToken: null while uploads are off
    const chips = []; // { name, size, type, state: "signing" | "uploading" | "done", key, stop, node }
    let dragDepth = 0;

    function chipButton(chip) {
      const cancel = make("button", "icon-button upload-chip-cancel");
      cancel.type = "button";
      cancel.append(crossIcon());
      cancel.addEventListener("click", () => {
        const at = chips.indexOf(chip);
        const uploading = chip.state !== "done";
        remove(chip);
        announce(uploading ? `Upload of ${chip.name} cancelled.` : `${chip.name} removed.`);
        const next = chips[Math.min(at, chips.length - 1)];
        (next ? next.node.querySelector(".upload-chip-cancel") : input).focus();
      });
      return cancel;
    }

    function chipNode(chip) {
      const node = make("li", "upload-chip");
      const icon = make("span", "upload-chip-icon", extensionOf(chip.name));
      icon.setAttribute("aria-hidden", "true");
      const body = make("span", "upload-chip-body");
      const status = make("span", "upload-chip-status");
      const progress = make("progress", "upload-progress");
      progress.max = 100;
      progress.setAttribute("aria-label", `Uploading ${chip.name}`);
      body.append(make("span", "upload-chip-name", chip.name), status, progress);
      node.append(icon, body, chipButton(chip));
      chip.node = node;
      chip.status = status;
      chip.progress = progress;
      show(chip);
      return node;
    }

    // The chip's words, bar and button for its state.
    function show(chip, fraction = null) {
      chip.node.dataset.state = chip.state;
      const cancel = chip.node.querySelector(".upload-chip-cancel");
      if (chip.state === "done") {
        chip.status.textContent = humanSize(chip.size);
        chip.progress.hidden = true;
        cancel.setAttribute("aria-label", `Remove ${chip.name}`);
        cancel.title = "Remove";
        return;
      }
      if (fraction === null) {
        chip.status.textContent = "Preparing…";
        chip.progress.removeAttribute("value");
      } else {
        const percent = Math.floor(fraction * 100);
        chip.status.textContent = `Uploading… ${percent}%`;
        chip.progress.value = percent;
      }
      cancel.setAttribute("aria-label", `Cancel the upload of ${chip.name}`);
      cancel.title = "Cancel the upload";
    }

    function remove(chip) {
      const at = chips.indexOf(chip);
      if (at < 0) return;
      chips.splice(at, 1);
      if (chip.stop) chip.stop();
      chip.stop = null;
      chip.node.remove();
      tray.hidden = chips.length === 0;
      onChange();
    }

    function fail(chip, text) {
      if (!chips.includes(chip)) return; // cancelled meanwhile
      remove(chip);
      onError(text);
    }

    function finish(chip) {
      chip.state = "done";
      chip.stop = null;
      show(chip);
      announce(`${chip.name} is ready to send.`);
      onChange();
    }

    async function sign(chip, file) {
      const controller = new AbortController();
      chip.stop = () => controller.abort();
      const headers = { "Content-Type": "application/json" };
      const csrf = csrfToken();
      if (csrf) headers["X-CSRFToken"] = csrf;
      let response;
      let answer = null;
      try {
        response = await fetch(endpoint, {
          method: "POST",
          credentials: "same-origin",
          headers,
          body: JSON.stringify({ token, name: chip.name, size: chip.size, type: chip.type }),
          signal: controller.signal,
        });
        answer = await response.json().catch(() => null);
      } catch {
        if (!controller.signal.aborted) fail(chip, `“${chip.name}” could not be uploaded: the chat did not answer. Try again.`);
        return;
      }
      if (!chips.includes(chip)) return;
      if (!response.ok || !answer || typeof answer !== "object") {
        const code = answer && typeof answer.error === "string" ? answer.error : "";
        const words = Object.hasOwn(REFUSALS, code) ? REFUSALS[code](chip.name) : null;
        const serverWords = answer && typeof answer.message === "string" ? answer.message : "";
        fail(chip, words || serverWords || `“${chip.name}” could not be uploaded. Try again.`);
        return;
      }
      const url = safeUrl(answer.url);
      if (typeof answer.key !== "string" || !url || !answer.fields || typeof answer.fields !== "object") {
        fail(chip, `“${chip.name}” could not be uploaded. Try again.`);
        return;
      }
      chip.key = answer.key;
      send(chip, file, url, answer.fields);
    }

    // The presigned POST: every signed field first, then the file, last, as S3 requires.
    function send(chip, file, url, fields) {
      const form = new FormData();
      for (const [name, value] of Object.entries(fields)) form.append(name, String(value));
      form.append("file", file, chip.name);
      const request = new XMLHttpRequest();
      chip.state = "uploading";
      chip.stop = () => request.abort();
      show(chip, 0);
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable && chip.state === "uploading") show(chip, event.loaded / event.total);
      });
      request.addEventListener("load", () => {
        if (request.status >= 200 && request.status < 300) finish(chip);
        else fail(chip, `“${chip.name}” could not be uploaded (the storage refused it). Try again.`);
      });
      request.addEventListener("error", () => fail(chip, `“${chip.name}” could not be uploaded: the connection failed. Try again.`));
      request.open("POST", url);
      request.send(form);
    }

    // Files the person chose, dropped or pasted.
    function add(files) {
      if (!token) return;
      for (const file of files) {
        if (chips.length >= MAX_ATTACHMENTS) {
          onError(`A message can carry at most ${MAX_ATTACHMENTS} files.`);
          break;
        }
        const name = file.name || `pasted.${(baseType(file.type).split("/")[1] || "bin").replace(/[^a-z0-9]/g, "")}`;
        if (file.size === 0) {
          onError(`“${name}” is empty.`);
          continue;
        }
        const chip = { name, size: file.size, type: baseType(file.type) || "application/octet-stream", state: "signing" };
        chips.push(chip);
        tray.append(chipNode(chip));
        sign(chip, file);
      }
      tray.hidden = chips.length === 0;
      onChange();
    }

    button.addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => {
      add([...picker.files]);
      picker.value = ""; // the same file may be chosen again
    });

    // An image pasted into the composer; text on the clipboard (a spreadsheet's cells come
    // with a picture of them) is pasted as text.
    input.addEventListener("paste", (event) => {
      const data = event.clipboardData;
      if (!token || !data || !data.files.length) return;
      if (data.types.includes("text/plain") && data.getData("text/plain")) return;
      event.preventDefault();
      add([...data.files]);
    });

    // Dropping files anywhere on the page never opens them in place of the chat.
    document.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = token && dropZone.contains(event.target) ? "copy" : "none";
    });
    document.addEventListener("drop", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    dropZone.addEventListener("dragenter", (event) => {
      if (!token || !hasFiles(event)) return;
      dragDepth += 1;
      hint.hidden = false;
    });
    dropZone.addEventListener("dragleave", (event) => {
      if (!hasFiles(event) || dragDepth === 0) return;
      dragDepth -= 1;
      if (dragDepth === 0) hint.hidden = true;
    });
    dropZone.addEventListener("drop", (event) => {
      dragDepth = 0;
      hint.hidden = true;
      if (!token || !hasFiles(event)) return;
      event.preventDefault();
      add([...event.dataTransfer.files]);
    });
    document.addEventListener("dragend", () => {
      dragDepth = 0;
      hint.hidden = true;
    });

    return {
      // The welcome's token: null (uploads off) hides the paperclip and ignores files.
      setToken(value) {
        token = typeof value === "string" && value ? value : null;
        button.hidden = token === null;
        picker.disabled = token === null;
      },
      // Files still on their way: the message waits for them.
      busy() {
        return chips.some((chip) => chip.state !== "done");
      },
      // The uploaded files, for a message: [{key, name, size, type}].
      ready() {
        return chips.filter((chip) => chip.state === "done").map(({ key, name, size, type }) => ({ key, name, size, type }));
      },
      // The message left with the files: empty the tray.
      clear() {
        for (const chip of chips.filter((found) => found.state === "done")) remove(chip);
      },
      // A message that could not be sent gives its files back to the tray.
      restore(attachments) {
        for (const { key, name, size, type } of valid(attachments)) {
          if (chips.length >= MAX_ATTACHMENTS) break;
          const chip = { key, name, size, type, state: "done" };
          chips.push(chip);
          tray.append(chipNode(chip));
        }
        tray.hidden = chips.length === 0;
        onChange();
      },
    };
  }

  return { create, render, refresh, describe, MAX_ATTACHMENTS };
})();
