/* agentsite chat page.
 *
 * The server renders pages and partials (htmx); this file adds what htmx can't: streaming a
 * run from POST /v1/infer/stream (fetch + a small SSE parser, since EventSource can't POST),
 * attachments and recording, the theme switch and a few keyboard niceties.
 * Model output is only ever inserted as text here; the sanitized Markdown comes from the
 * server once a run is done.
 */
(function () {
  "use strict";

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  /** Build an element; string children become text nodes (never HTML). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  // Static icon markup (constants, no data in them).
  const ICON_COPY = '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="9" y="9" width="12" height="12" rx="2"/><path d="M5 15H4a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1h10a1 1 0 0 1 1 1v1"/></svg>';
  const ICON_X = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 6l12 12M18 6L6 18"/></svg>';

  // ---- theme (every page, the login page too) ------------------------------------------

  const root = document.documentElement;
  const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");

  function effectiveTheme() {
    return root.dataset.theme || (darkQuery.matches ? "dark" : "light");
  }

  function updateThemeButton() {
    const button = $("#theme-toggle");
    if (button) button.setAttribute("aria-label", `Switch to ${effectiveTheme() === "dark" ? "light" : "dark"} theme`);
  }

  function setTheme(theme) {
    root.dataset.theme = theme;
    // A cookie, so the server renders the right theme on the first paint (no flash).
    document.cookie = `theme=${theme}; path=/; max-age=31536000; SameSite=Lax`;
    try { localStorage.setItem("theme", theme); } catch (e) { /* private mode */ }
    updateThemeButton();
  }

  if (!root.dataset.theme) {
    let saved = null;
    try { saved = localStorage.getItem("theme"); } catch (e) { /* ignore */ }
    if (saved === "dark" || saved === "light") setTheme(saved);
  }
  updateThemeButton();
  document.addEventListener("click", (e) => {
    if (e.target.closest("#theme-toggle")) setTheme(effectiveTheme() === "dark" ? "light" : "dark");
  });

  // ---- code blocks: a header with the language and a copy button --------------------------

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const area = el("textarea", { class: "sr-only", readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }

  function enhanceCode(scope) {
    for (const pre of $$(".md pre.code", scope)) {
      if (pre.parentElement.classList.contains("code-block")) continue;
      const wrap = el("div", { class: "code-block" });
      const button = el("button", { type: "button", class: "copy-btn", "aria-label": "Copy code" });
      button.innerHTML = ICON_COPY;
      const label = el("span", { text: "Copy" });
      button.append(label);
      button.addEventListener("click", async () => {
        try {
          await copyText(pre.innerText.replace(/\n$/, ""));
          label.textContent = "Copied";
        } catch (err) {
          label.textContent = "Copy failed";
        }
        setTimeout(() => { label.textContent = "Copy"; }, 1500);
      });
      pre.replaceWith(wrap);
      wrap.append(el("div", { class: "code-head" }, el("span", { text: pre.dataset.lang || "code" }), button), pre);
    }
  }

  const app = $("#app");
  if (!app) {
    // Not the chat page (e.g. login): theme only.
    return;
  }

  // ---- elements and state ----------------------------------------------------------------

  const form = $("#composer");
  const prompt = $("#prompt");
  const sendBtn = $("#send-btn");
  const stopBtn = $("#stop-btn");
  const modelSelect = $("#model-select");
  const templateSelect = $("#template-select");
  const toolPicker = $("#tool-picker");
  const fileInput = $("#file-input");
  const attachBox = $("#attachments");
  const micBtn = $("#mic-btn");
  const recTimer = $("#rec-timer");
  const composerError = $("#composer-error");
  const narrow = window.matchMedia("(max-width: 820px)");

  const conv = () => $("#conversation");
  const messagesEl = () => $("#messages");

  const state = {
    convEl: conv(),
    sessionId: conv().dataset.sessionId || null,
    current: null, // the stream shown on screen: {controller, sessionId, turn, body, ...}
    images: [], // {dataUrl, name}
    audio: [], // {base64, url}
    recorder: null,
  };

  const MAX_IMAGE_BYTES = 10 * 1024 * 1024;

  function csrfToken() {
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (m) return decodeURIComponent(m[1]);
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  // ---- scrolling ---------------------------------------------------------------------------
  // The view sticks to the bottom while the reader is there: a ResizeObserver follows every
  // growth (streamed text, the rendered answer replacing it, images, code blocks) after layout,
  // so nothing reads layout per chunk, and a reader who scrolled up is left alone.

  let stick = true;
  function atBottom(c) {
    return c.scrollHeight - c.scrollTop - c.clientHeight < 80;
  }
  function toBottom() {
    const c = conv();
    if (c) c.scrollTop = c.scrollHeight;
  }
  function scrollToBottom(force) {
    if (force) stick = true;
    if (stick) toBottom();
  }
  document.addEventListener("scroll", (e) => {
    if (e.target === conv()) stick = atBottom(e.target);
  }, true);
  const resizes = new ResizeObserver(() => { if (stick) toBottom(); });
  function observeConversation() {
    resizes.disconnect();
    resizes.observe(conv());
    resizes.observe(messagesEl());
  }

  // ---- composer helpers --------------------------------------------------------------------

  function autosize() {
    prompt.style.height = "auto";
    prompt.style.height = Math.min(prompt.scrollHeight, window.innerHeight * 0.4) + "px";
  }

  function showComposerError(message) {
    composerError.textContent = message;
    composerError.hidden = !message;
  }

  function setStreamingUI(on) {
    sendBtn.hidden = on;
    stopBtn.hidden = !on;
    stopBtn.disabled = false;
    if (!on && document.activeElement === stopBtn) prompt.focus();
  }

  function focusPrompt() {
    if (!narrow.matches) prompt.focus();
  }

  function updatePlaceholder() {
    if (!modelSelect) return;
    const option = modelSelect.selectedOptions[0];
    prompt.placeholder = `Message ${option ? option.textContent.trim() : "the model"}…`;
  }

  // ---- tools picker --------------------------------------------------------------------------

  function selectedTools() {
    return $$('input[name="tool_ids"]:checked', toolPicker).map((i) => i.value);
  }

  function updateToolCount() {
    const count = selectedTools().length;
    const badge = $("#tool-count");
    badge.textContent = String(count);
    badge.hidden = count === 0;
    $("summary", toolPicker).setAttribute("aria-label", count ? `Tools, ${count} selected` : "Tools");
  }

  toolPicker.addEventListener("change", updateToolCount);
  const toolFilter = $("#tool-filter");
  if (toolFilter) {
    toolFilter.addEventListener("input", () => {
      const q = toolFilter.value.trim().toLowerCase();
      for (const option of $$(".tool-option", toolPicker)) option.hidden = q !== "" && !option.dataset.search.includes(q);
      for (const group of $$(".tool-group", toolPicker)) group.hidden = !$$(".tool-option:not([hidden])", group).length;
    });
  }
  document.addEventListener("click", (e) => {
    if (toolPicker.open && !toolPicker.contains(e.target)) toolPicker.open = false;
  });
  toolPicker.addEventListener("toggle", () => {
    if (toolPicker.open && toolFilter) toolFilter.focus();
  });

  // ---- attachments -------------------------------------------------------------------------

  function renderAttachments() {
    attachBox.replaceChildren();
    state.images.forEach((img, i) => {
      const remove = el("button", { type: "button", class: "attach-remove", "aria-label": `Remove image ${img.name}` });
      remove.innerHTML = ICON_X;
      remove.addEventListener("click", () => { state.images.splice(i, 1); renderAttachments(); checkVision(); prompt.focus(); });
      attachBox.append(el("div", { class: "attach-item" }, el("img", { src: img.dataUrl, alt: `Attached image ${img.name}` }), remove));
    });
    state.audio.forEach((clip, i) => {
      const remove = el("button", { type: "button", class: "attach-remove", "aria-label": "Remove recording" });
      remove.innerHTML = ICON_X;
      remove.addEventListener("click", () => { URL.revokeObjectURL(clip.url); state.audio.splice(i, 1); renderAttachments(); prompt.focus(); });
      attachBox.append(el("div", { class: "attach-item" }, el("audio", { controls: true, src: clip.url, "aria-label": "Recorded audio" }), remove));
    });
    attachBox.hidden = !(state.images.length || state.audio.length);
  }

  function readAsDataURL(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
  }

  async function addImages(files) {
    showComposerError("");
    for (const file of files) {
      if (!file.type.startsWith("image/")) continue;
      if (file.size > MAX_IMAGE_BYTES) {
        showComposerError(`${file.name} is larger than 10 MB.`);
        continue;
      }
      state.images.push({ dataUrl: await readAsDataURL(file), name: file.name || "pasted image" });
    }
    renderAttachments();
    checkVision();
  }

  $("#attach-btn").addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", async () => {
    await addImages(Array.from(fileInput.files || []));
    fileInput.value = "";
    prompt.focus();
  });
  prompt.addEventListener("paste", (e) => {
    const files = Array.from((e.clipboardData && e.clipboardData.files) || []).filter((f) => f.type.startsWith("image/"));
    if (files.length) {
      e.preventDefault();
      addImages(files);
    }
  });

  // ---- microphone: MediaRecorder, then WAV (the API takes wav or mp3) --------------------------

  function encodeWav(samples, rate) {
    const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
    const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
    text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
    text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
    text(36, "data"); view.setUint32(40, samples.length * 2, true);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return new Blob([view], { type: "audio/wav" });
  }

  async function toWav(blob) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    const ctx = new Ctx();
    let decoded;
    try {
      decoded = await ctx.decodeAudioData(await blob.arrayBuffer());
    } finally {
      ctx.close();
    }
    const rate = 16000; // speech models want 16 kHz mono; it also keeps uploads small
    const offline = new OfflineAudioContext(1, Math.max(1, Math.ceil(decoded.duration * rate)), rate);
    const source = offline.createBufferSource();
    source.buffer = decoded;
    source.connect(offline.destination);
    source.start();
    const rendered = await offline.startRendering();
    return encodeWav(rendered.getChannelData(0), rate);
  }

  async function toggleRecording() {
    if (state.recorder) {
      state.recorder.stop();
      return;
    }
    showComposerError("");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.MediaRecorder) {
      showComposerError("Recording is not available in this browser (it needs HTTPS or localhost).");
      return;
    }
    let media;
    try {
      media = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      showComposerError("Microphone access was denied.");
      return;
    }
    const recorder = new MediaRecorder(media);
    const chunks = [];
    const started = Date.now();
    const tick = () => {
      const s = Math.floor((Date.now() - started) / 1000);
      recTimer.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    };
    tick();
    const timer = setInterval(tick, 500);
    recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
    recorder.onstop = async () => {
      clearInterval(timer);
      media.getTracks().forEach((t) => t.stop());
      state.recorder = null;
      micBtn.setAttribute("aria-pressed", "false");
      micBtn.setAttribute("aria-label", "Record audio");
      recTimer.hidden = true;
      try {
        const wav = await toWav(new Blob(chunks, { type: recorder.mimeType }));
        const dataUrl = await readAsDataURL(wav);
        state.audio.push({ base64: dataUrl.slice(dataUrl.indexOf(",") + 1), url: URL.createObjectURL(wav) });
        renderAttachments();
      } catch (err) {
        showComposerError("Could not read the recording.");
      }
      prompt.focus();
    };
    recorder.start();
    state.recorder = recorder;
    micBtn.setAttribute("aria-pressed", "true");
    micBtn.setAttribute("aria-label", "Stop recording");
    recTimer.hidden = false;
  }

  micBtn.addEventListener("click", toggleRecording);

  // ---- SSE over fetch --------------------------------------------------------------------------

  /** Calls onEvent(name, data) for each event of a text/event-stream body; comments are skipped. */
  async function readEventStream(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const dispatch = (block) => {
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue; // ": ping" keep-alives
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        dispatch(block);
      }
    }
    if (buffer.trim()) dispatch(buffer);
  }

  // ---- the live turn ---------------------------------------------------------------------------

  function userBubble(text, images, audio, template) {
    const bubble = el("div", { class: "bubble" });
    if (template) {
      const badge = el("div", { class: "tpl-badge" }, "Template ", el("b", { text: template.name }));
      bubble.append(badge);
      const args = Object.entries(template.arguments).map(([k, v]) => `${k}: ${v}`).join("\n");
      if (args) bubble.append(el("div", { class: "tpl-args", text: args }));
    }
    if (images.length || audio.length) {
      const box = el("div", { class: "msg-attachments" });
      for (const img of images) box.append(el("img", { src: img.dataUrl, alt: "Attached image" }));
      for (const clip of audio) box.append(el("audio", { controls: true, src: clip.url }));
      bubble.append(box);
    }
    if (text) bubble.append(el("div", { class: "user-text", text }));
    return el("article", { class: "msg msg-user" }, bubble);
  }

  function typingIndicator() {
    return el("div", { class: "typing", role: "status", "aria-label": "Waiting for the model" }, el("span"), el("span"), el("span"));
  }

  // One sentence per error code, the same table the server renders stored errors with.
  const errorText = JSON.parse(app.dataset.errorText || "{}");

  /** The notice for an error envelope: a plain sentence, the code and message under "Details". */
  function errorNotice(error) {
    const code = (error && error.code) || "error";
    const text = errorText[code] || errorText[""] || "Something went wrong.";
    const message = (error && error.message) || "";
    const detail = el("details", { class: "notice-detail" }, el("summary", { text: "Details" }), el("code", { text: code }));
    if (message && message.trim() !== text) detail.append(` ${message}`);
    return el("div", { class: "notice notice-error", role: "alert", "data-code": code }, el("p", { class: "notice-text", text }), detail);
  }

  function toolResultText(content) {
    if (typeof content === "string") return content;
    return (content || []).map((item) => {
      if (item.type === "text") return item.text;
      if (item.type === "resource") return (item.resource && (item.resource.text || item.resource.uri)) || "[resource]";
      return `[${item.type}]`;
    }).join("\n");
  }

  // A sub-agent at work (an agent.<name> tool): its answer grows on the card, its own tool
  // calls show in the status line; deeper sub-runs arrive nested the same way.
  function agentProgress(card, p) {
    const status = $(".tool-status", card);
    let who = p.agent;
    let nested = false;
    while (p.event === "tool_progress" && p.data && p.data.agent) {
      p = p.data;
      who += ` → ${p.agent}`;
      nested = true;
    }
    const data = p.data || {};
    if (p.event === "delta" && data.content && !nested) {
      let out = $(".tool-subrun", card);
      if (!out) {
        out = el("pre", { class: "tool-result tool-subrun" });
        card.append(el("details", { class: "tool-section", open: true }, el("summary", { text: `${who} is answering` }), out));
      }
      out.textContent += data.content;
    } else if (p.event === "delta") {
      status.textContent = `${who} · ${data.thinking ? "thinking" : "writing"}…`;
    } else if (p.event === "tool_call") {
      status.textContent = `${who} · calling ${data.name}…`;
    } else if (p.event === "tool_result") {
      status.textContent = `${who} · ${data.tool_id} ${data.is_error ? "failed" : "done"}`;
    }
  }

  function toolCard(call) {
    const status = el("span", { class: "tool-status", text: "running…" });
    const head = el("div", { class: "tool-head" }, el("span", { class: "tool-icon", "aria-hidden": "true" }), el("span", { class: "tool-name", text: call.name || call.tool_id }));
    if (call.tool_id && call.tool_id !== call.name) head.append(el("span", { class: "tool-id", text: call.tool_id }));
    head.append(status);
    const args = el("details", { class: "tool-section" }, el("summary", { text: "Arguments" }), el("pre", { class: "tool-args", text: JSON.stringify(call.arguments || {}, null, 2) }));
    return el("div", { class: "tool-card", "data-state": "pending", "data-live": true, "data-call-id": call.id || "" }, head, args);
  }

  /**
   * One run on screen. Deltas are buffered and painted once per animation frame, as text
   * appended to the current paragraph (a blank line starts the next one): the cost of a
   * chunk is the size of the chunk, never of the answer so far. The sanitized Markdown
   * replaces it all once the run is done.
   */
  class Stream {
    constructor(turn, body, fromSeq, sessionId) {
      this.controller = new AbortController();
      this.turn = turn;
      this.body = body;
      this.article = body.parentElement;
      this.fromSeq = fromSeq;
      this.sessionId = sessionId;
      this.text = null; // the .md element being streamed into
      this.node = null; // the text node of its last paragraph
      this.thinking = null;
      this.pendingText = "";
      this.pendingThinking = "";
      this.frame = 0;
      this.finished = false;
      this.failed = false;
      this.errored = false; // the server reported the failure: it stored it as part of the turn
    }

    get onScreen() {
      return this.turn.isConnected;
    }

    clearTyping() {
      const t = $(".typing", this.body);
      if (t) t.remove();
    }

    schedule() {
      if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.paint(false); });
    }

    paint(all) {
      if (this.frame) { cancelAnimationFrame(this.frame); this.frame = 0; }
      if (this.pendingThinking) {
        this.clearTyping();
        if (!this.thinking) {
          const text = el("div", { class: "thinking-text" });
          this.body.append(el("details", { class: "thinking", open: true, "data-live": true }, el("summary", { text: "Thinking" }), text));
          this.thinking = text;
        }
        this.thinking.append(this.pendingThinking);
        this.pendingThinking = "";
      }
      let piece = this.pendingText;
      // A paragraph break may arrive split over two chunks: hold a trailing newline back.
      if (!all && piece.endsWith("\n")) piece = piece.slice(0, -1);
      if (!piece) return;
      this.pendingText = this.pendingText.slice(piece.length);
      this.clearTyping();
      if (this.thinking) {
        this.thinking.parentElement.removeAttribute("data-live");
        this.thinking.parentElement.open = false;
        this.thinking = null;
      }
      if (!this.text) {
        this.text = el("div", { class: "md streaming" });
        this.body.append(this.text);
        this.newParagraph();
      }
      const parts = piece.split("\n\n");
      this.node.appendData(parts[0]);
      for (let i = 1; i < parts.length; i++) {
        if (this.node.length) this.newParagraph();
        this.node.appendData(parts[i].replace(/^\n+/, ""));
      }
    }

    newParagraph() {
      this.node = document.createTextNode("");
      this.text.append(el("p", {}, this.node));
    }

    closeSegment() {
      this.paint(true);
      if (this.text) this.text.classList.remove("streaming");
      if (this.thinking) this.thinking.parentElement.removeAttribute("data-live");
      this.text = null;
      this.node = null;
      this.thinking = null;
    }

    fail(notice) {
      this.failed = true;
      this.closeSegment();
      this.clearTyping();
      this.body.append(notice);
    }

    handle(name, data) {
      if (name === "delta") {
        if (data.thinking) this.pendingThinking += data.thinking;
        if (data.content) this.pendingText += data.content;
        this.schedule();
        return;
      }
      this.paint(true);
      if (name === "session") {
        this.sessionId = data.session_id;
        if (this.onScreen && state.sessionId !== this.sessionId) {
          state.sessionId = this.sessionId;
          conv().dataset.sessionId = this.sessionId;
          // htmx's marker, so the back button restores this URL like the ones htmx pushed.
          history.replaceState({ htmx: true }, "", `/c/${encodeURIComponent(this.sessionId)}/`);
          refreshSidebar(this.sessionId);
        }
      } else if (name === "tool_call") {
        this.clearTyping();
        this.closeSegment();
        this.body.append(toolCard(data));
      } else if (name === "tool_progress") {
        const card = $$(".tool-card", this.body).find((c) => c.dataset.callId === (data.id || ""));
        if (card && data.agent) {
          agentProgress(card, data);
        } else if (card) {
          const total = typeof data.total === "number" ? `/${data.total}` : "";
          $(".tool-status", card).textContent = `running… ${data.progress}${total}${data.message ? ` · ${data.message}` : ""}`;
          if (typeof data.total === "number" && data.total > 0) {
            let bar = $("progress.tool-progress", card);
            if (!bar) {
              bar = el("progress", { class: "tool-progress" });
              $(".tool-head", card).after(bar);
            }
            bar.max = data.total;
            bar.value = Math.min(data.progress, data.total);
          }
        }
      } else if (name === "tool_result") {
        const card = $$(".tool-card", this.body).find((c) => c.dataset.callId === (data.id || ""));
        if (card) {
          card.dataset.state = data.is_error ? "error" : "ok";
          card.removeAttribute("data-live");
          $("progress.tool-progress", card)?.remove();
          const ms = typeof data.duration_ms === "number" ? ` · ${Math.round(data.duration_ms)} ms` : "";
          $(".tool-status", card).textContent = (data.is_error ? "error" : "done") + ms;
          card.append(el("details", { class: "tool-section", open: true }, el("summary", { text: "Result" }), el("pre", { class: "tool-result", text: toolResultText(data.content) })));
        }
        if (!$(".typing", this.body)) this.body.append(typingIndicator());
      } else if (name === "message") {
        if (data.role === "assistant") this.closeSegment();
      } else if (name === "done") {
        this.finished = true;
        this.closeSegment();
        this.clearTyping();
      } else if (name === "error") {
        this.errored = true;
        this.fail(errorNotice(data.error));
      }
    }
  }

  function refreshSidebar(currentId) {
    const params = new URLSearchParams({ current: currentId || "", q: searchBox ? searchBox.value : "" });
    return htmx.ajax("GET", `/sidebar/?${params}`, { target: "#session-list", swap: "outerHTML" });
  }

  function nextSeq() {
    const marks = $$("[data-next-seq]", messagesEl());
    return marks.length ? parseInt(marks[marks.length - 1].dataset.nextSeq, 10) || 0 : 0;
  }

  /** Only the last answer offers "Regenerate". */
  function markLastAnswer() {
    const answers = $$(".msg-assistant", messagesEl());
    answers.forEach((a, i) => a.classList.toggle("last-answer", i === answers.length - 1));
  }

  async function finish(stream) {
    if (stream === state.current) {
      state.current = null;
      setStreamingUI(false);
    }
    stream.article.removeAttribute("aria-busy");
    if (stream.sessionId) refreshSidebar(stream.sessionId === state.sessionId ? stream.sessionId : state.sessionId);
    // Replace the raw streamed text by the stored turn, rendered and sanitized by the server.
    // A failed run's turn is stored too: swapped in, it marks where the next turn starts (kept
    // live, the next turn's fragment would show this question and its error a second time).
    if (((stream.finished && !stream.failed) || stream.errored) && stream.sessionId && stream.onScreen) {
      const url = `/c/${encodeURIComponent(stream.sessionId)}/messages/?from_seq=${stream.fromSeq}`;
      try {
        await htmx.ajax("GET", url, { target: stream.turn, swap: "outerHTML" });
      } catch (err) {
        /* keep the streamed text */
      }
    }
    markLastAnswer();
    if (stream.onScreen || !state.current) focusPrompt();
  }

  function selectedModelInfo() {
    const option = modelSelect && modelSelect.selectedOptions[0];
    return option ? { id: option.value, name: option.textContent.trim(), vision: option.dataset.vision === "1" } : null;
  }

  /** Images wait in the tray for a model that can see them; the sentence says what to do. */
  function visionProblem() {
    const model = selectedModelInfo();
    if (!state.images.length || !model || model.vision) return "";
    return `${model.name} can't read images. Pick a model with vision, or remove the image.`;
  }

  function checkVision() {
    const problem = visionProblem();
    attachBox.classList.toggle("refused", Boolean(problem));
    showComposerError(problem);
    return !problem;
  }

  /**
   * Start a run that streams into a new turn: POST ``url`` with ``body``. ``shown`` is what the
   * turn shows of the user's side (null: none, as for a regenerate). ``refused(error)`` is
   * called instead when the server refuses the request before it starts.
   */
  async function startRun(url, body, shown, refused) {
    const list = messagesEl();
    const empty = $(".empty-state", list);
    if (empty) empty.remove();
    const assistantBody = el("div", { class: "assistant-body" }, typingIndicator());
    const article = el("article", { class: "msg msg-assistant", "aria-busy": "true" }, el("div", { class: "avatar", "aria-hidden": "true" }), assistantBody);
    const bubble = shown ? userBubble(shown.text, shown.images, shown.audio, shown.template) : null;
    const turn = el("div", { class: "live-turn" }, bubble, article);
    list.append(turn);
    scrollToBottom(true);

    const stream = new Stream(turn, assistantBody, nextSeq(), state.sessionId);
    state.current = stream;
    setStreamingUI(true);

    let res;
    try {
      res = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(body),
        signal: stream.controller.signal,
      });
    } catch (err) {
      stream.fail(errorNotice({ code: "network_error" }));
      return finish(stream);
    }
    if (!res.ok) {
      let error;
      try {
        error = (await res.json()).error;
      } catch (err) {
        error = { code: `http_${res.status}`, message: res.statusText || "The request failed." };
      }
      if (refused) {
        turn.remove();
        refused(error);
      } else {
        stream.fail(errorNotice(error));
        if (bubble) bubble.classList.add("failed");
      }
      return finish(stream);
    }
    try {
      await readEventStream(res.body, (name, data) => stream.handle(name, data));
    } catch (err) {
      if (!stream.finished && !stream.failed) {
        const aborted = err && err.name === "AbortError";
        stream.fail(aborted ? el("div", { class: "note-stopped", text: "Stopped · partial answer kept" }) : errorNotice({ code: "connection_lost" }));
      }
    }
    if (!stream.finished && !stream.failed) stream.fail(errorNotice({ code: "connection_lost" }));
    return finish(stream);
  }

  function runOptions() {
    const option = modelSelect && modelSelect.selectedOptions[0];
    if (option && option.dataset.agent) {
      // An agent brings its own tools; tools picked here replace them (none picked: the agent's).
      const tools = selectedTools();
      return tools.length ? { agent: option.dataset.agent, tool_ids: tools } : { agent: option.dataset.agent };
    }
    return { model_id: modelSelect && modelSelect.value, tool_ids: selectedTools() };
  }

  async function send() {
    if (state.current || state.recorder) return;
    showComposerError("");
    const text = prompt.value;
    const tplFields = $(".tpl-fields");
    const useTemplate = templateSelect && templateSelect.value && tplFields;
    if (!text.trim() && !state.images.length && !state.audio.length && !useTemplate) {
      prompt.focus();
      return;
    }
    const modelId = modelSelect && modelSelect.value;
    if (!modelId) {
      showComposerError("Pick a model first.");
      return;
    }
    if (!checkVision()) return;

    let template = null;
    if (useTemplate) {
      const args = {};
      for (const field of $$("[data-var]", tplFields)) {
        if (!field.value.trim()) {
          showComposerError(`Fill in “${field.dataset.var}” for the template.`);
          field.focus();
          return;
        }
        args[field.dataset.var] = field.value;
      }
      template = { name: tplFields.dataset.template, arguments: args };
    }

    const images = state.images.slice();
    const audio = state.audio.slice();
    const messages = [];
    if (template) messages.push({ role: "user", prompt_template: template.name, arguments: template.arguments });
    if (text.trim() || !template) messages.push({ role: "user", content: text });
    const last = messages[messages.length - 1];
    if (images.length) last.images = images.map((i) => i.dataUrl);
    if (audio.length) last.audio = audio.map((a) => ({ data: a.base64, format: "wav" }));

    const body = { ...runOptions(), messages, session_id: state.sessionId || "new" };
    prompt.value = "";
    autosize();
    state.images = [];
    state.audio = [];
    renderAttachments();
    if (template) {
      templateSelect.value = "";
      $("#template-fields").replaceChildren();
    }
    prompt.focus();
    // Refused before it started (a 4xx): nothing was stored, so the user gets it all back.
    await startRun("/v1/infer/stream", body, { text, images, audio, template }, (error) => {
      if (!prompt.value) { prompt.value = text; autosize(); }
      if (!state.images.length && !state.audio.length) { state.images = images; state.audio = audio; renderAttachments(); }
      showNotice(errorNotice(error));
    });
  }

  function showNotice(notice) {
    composerError.replaceChildren(...notice.childNodes);
    composerError.hidden = false;
  }

  async function regenerate(article) {
    if (state.current || !state.sessionId) return;
    showComposerError("");
    article.hidden = true;
    await startRun(`/v1/sessions/${encodeURIComponent(state.sessionId)}/regenerate/stream`, runOptions(), null, (error) => {
      article.hidden = false;
      showNotice(errorNotice(error));
    });
    if (article.hidden) article.remove();
  }

  function editMessage(article) {
    if (state.current || !state.sessionId || $(".edit-form", article)) return;
    const bubble = $(".bubble", article);
    const original = $(".user-text", bubble);
    const area = el("textarea", { class: "edit-text", rows: 3, "aria-label": "Edit your message" });
    area.value = original ? original.textContent : "";
    const error = el("div", { class: "notice notice-error", role: "alert", hidden: true });
    const save = el("button", { type: "submit", class: "btn btn-primary", text: "Save & send" });
    const cancel = el("button", { type: "button", class: "btn", text: "Cancel" });
    const form = el("form", { class: "edit-form" }, area, error, el("div", { class: "edit-actions" }, cancel, save));
    bubble.hidden = true;
    article.classList.add("editing");
    article.append(form);
    area.focus();
    const close = () => { form.remove(); bubble.hidden = false; article.classList.remove("editing"); };
    cancel.addEventListener("click", close);
    area.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { e.stopPropagation(); close(); }
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (state.current || !area.value.trim()) return;
      const seq = parseInt(article.dataset.seq, 10);
      const images = $$(".msg-attachments img", bubble).map((img) => ({ dataUrl: img.src }));
      // The edited message and everything after it give way to the new branch.
      const all = $$(".msg", messagesEl());
      const later = all.slice(all.indexOf(article));
      later.forEach((node) => { node.hidden = true; });
      const text = area.value;
      await startRun(`/v1/sessions/${encodeURIComponent(state.sessionId)}/edit/stream`, { ...runOptions(), seq, content: text },
        { text, images, audio: [], template: null }, (err) => {
          later.forEach((node) => { node.hidden = false; });
          error.replaceChildren(...errorNotice(err).childNodes);
          error.hidden = false;
        });
      if (article.hidden) later.forEach((node) => node.remove());
    });
  }

  async function copyAnswer(article, button) {
    const raw = $("template.raw-answer", article);
    try {
      await copyText(raw ? raw.content.textContent : $$(".md", article).map((m) => m.innerText).join("\n\n"));
      button.textContent = "Copied";
    } catch (err) {
      button.textContent = "Copy failed";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  }

  document.addEventListener("click", (e) => {
    const button = e.target.closest("[data-action]");
    if (!button || !app.contains(button)) return;
    const article = button.closest(".msg");
    const action = button.dataset.action;
    if (action === "copy-answer") copyAnswer(article, button);
    else if (action === "regenerate") regenerate(article);
    else if (action === "edit") editMessage(article);
    else if (action === "rename") renameChat(button.closest(".session-item"));
  });

  // ---- chat list: search and rename ---------------------------------------------------------------

  const searchBox = $("#chat-search");
  let searchTimer = 0;
  if (searchBox) {
    searchBox.addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => refreshSidebar(state.sessionId), 250);
    });
  }

  function renameChat(item) {
    const link = $(".session-link", item);
    if (!link || $(".rename-input", item)) return;
    const sessionId = item.dataset.sessionId;
    const input = el("input", { type: "text", class: "rename-input", maxlength: 200, "aria-label": "New name of the chat" });
    input.value = link.textContent.trim();
    link.hidden = true;
    item.prepend(input);
    input.focus();
    input.select();
    let done = false;
    const end = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      if (save && title && title !== link.textContent.trim()) {
        const res = await fetch(`/v1/sessions/${encodeURIComponent(sessionId)}`, {
          method: "PATCH", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
          body: JSON.stringify({ title }),
        });
        if (res.ok) {
          const saved = (await res.json()).title;
          link.textContent = saved;
          if (sessionId === state.sessionId) {
            const head = $("#conv-title");
            if (head) head.textContent = saved;
            document.title = `${saved} · agentsite`;
          }
        }
      }
      input.remove();
      link.hidden = false;
      link.focus();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); end(true); }
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); end(false); }
    });
    input.addEventListener("blur", () => end(true));
  }

  async function stop() {
    const stream = state.current;
    if (!stream) return;
    stopBtn.disabled = true;
    if (stream.sessionId) {
      try {
        const res = await fetch(`/v1/sessions/${encodeURIComponent(stream.sessionId)}/cancel`, {
          method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() },
        });
        // 202: the run stops and its stream ends with done (finish_reason "cancelled"); 409: already over.
        if (res.status === 202 || res.status === 409) return;
      } catch (err) { /* fall through: drop the connection, which cancels the run too */ }
    }
    stream.controller.abort();
  }

  // ---- wiring -----------------------------------------------------------------------------------

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  stopBtn.addEventListener("click", stop);
  prompt.addEventListener("input", autosize);
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  form.addEventListener("keydown", (e) => {
    // Enter in a one-line template field moves on instead of sending half a form.
    if (e.key === "Enter" && !e.shiftKey && e.target.matches("[data-var]")) {
      e.preventDefault();
      const fields = $$("[data-var]", form);
      const next = fields[fields.indexOf(e.target) + 1];
      (next || prompt).focus();
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    if (toolPicker.open) {
      toolPicker.open = false;
      $("summary", toolPicker).focus();
    } else if (app.classList.contains("sidebar-open")) {
      closeSidebar();
    } else if (state.current) {
      stop();
    }
  });
  if (modelSelect) modelSelect.addEventListener("change", () => { updatePlaceholder(); checkVision(); prompt.focus(); });
  document.body.addEventListener("htmx:afterSwap", (e) => {
    if (e.detail.target && e.detail.target.id === "template-fields") {
      const first = $("[data-var]", e.detail.target);
      (first || prompt).focus();
    }
  });

  // Narrow screens: the chat list slides in.
  const openBtn = $("#sidebar-open");
  const scrim = $("#scrim");
  function openSidebar() {
    app.classList.add("sidebar-open");
    scrim.hidden = false;
    openBtn.setAttribute("aria-expanded", "true");
    const first = $(".session-link[aria-current]") || $("#new-chat");
    first.focus();
  }
  function closeSidebar() {
    if (!app.classList.contains("sidebar-open")) return;
    app.classList.remove("sidebar-open");
    scrim.hidden = true;
    openBtn.setAttribute("aria-expanded", "false");
  }
  openBtn.addEventListener("click", openSidebar);
  $("#sidebar-close").addEventListener("click", () => { closeSidebar(); openBtn.focus(); });
  scrim.addEventListener("click", closeSidebar);

  /** After htmx swapped the conversation (switching chats, new chat, delete). */
  function conversationChanged() {
    const c = conv();
    state.convEl = c;
    if (state.current && !state.current.onScreen) {
      // That run goes on in the background (its answer is stored); the box is free again.
      state.current = null;
      setStreamingUI(false);
    }
    state.sessionId = c.dataset.sessionId || null;
    const modelId = c.dataset.modelId;
    if (modelSelect && modelId && $$("option", modelSelect).some((o) => o.value === modelId)) {
      modelSelect.value = modelId;
      updatePlaceholder();
    }
    showComposerError("");
    closeSidebar();
    observeConversation();
    markLastAnswer();
    scrollToBottom(true);
    focusPrompt();
  }

  document.body.addEventListener("htmx:afterSettle", () => {
    if (conv() !== state.convEl) conversationChanged();
    markLastAnswer();
    const active = $(".session-link[aria-current]");
    if (active && state.sessionId) document.title = `${active.textContent.trim()} · agentsite`;
  });

  htmx.onLoad(enhanceCode);
  observeConversation();
  markLastAnswer();
  updateToolCount();
  updatePlaceholder();
  autosize();
  scrollToBottom(true);
  focusPrompt();
})();
