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

  let scrollQueued = false;
  function nearBottom() {
    const c = conv();
    return c.scrollHeight - c.scrollTop - c.clientHeight < 120;
  }
  function scrollToBottom(force) {
    if (!force && !nearBottom()) return;
    if (scrollQueued) return;
    scrollQueued = true;
    requestAnimationFrame(() => {
      scrollQueued = false;
      const c = conv();
      c.scrollTop = c.scrollHeight;
    });
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
      remove.addEventListener("click", () => { state.images.splice(i, 1); renderAttachments(); prompt.focus(); });
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
    return el("div", { class: "typing", "aria-label": "Waiting for the model" }, el("span"), el("span"), el("span"));
  }

  function errorNotice(error) {
    const code = (error && error.code) || "error";
    const friendly = {
      session_busy: "This chat is still answering another request. Wait for it to finish, or press Stop.",
      model_unavailable: "The model is unavailable right now.",
      model_timeout: "The model took too long to answer.",
      not_authenticated: "Your login has expired. Reload the page to log in again.",
    }[code];
    const notice = el("div", { class: "notice notice-error", role: "alert" }, el("b", { text: code }));
    notice.append(friendly ? `${friendly} ${error.message || ""}` : (error && error.message) || "Something went wrong.");
    return notice;
  }

  function toolResultText(content) {
    if (typeof content === "string") return content;
    return (content || []).map((item) => {
      if (item.type === "text") return item.text;
      if (item.type === "resource") return (item.resource && (item.resource.text || item.resource.uri)) || "[resource]";
      return `[${item.type}]`;
    }).join("\n");
  }

  function toolCard(call) {
    const status = el("span", { class: "tool-status", text: "running…" });
    const head = el("div", { class: "tool-head" }, el("span", { class: "tool-icon", "aria-hidden": "true" }), el("span", { class: "tool-name", text: call.name || call.tool_id }));
    if (call.tool_id && call.tool_id !== call.name) head.append(el("span", { class: "tool-id", text: call.tool_id }));
    head.append(status);
    const args = el("details", { class: "tool-section" }, el("summary", { text: "Arguments" }), el("pre", { class: "tool-args", text: JSON.stringify(call.arguments || {}, null, 2) }));
    return el("div", { class: "tool-card", "data-state": "pending", "data-live": true, "data-call-id": call.id || "" }, head, args);
  }

  class Stream {
    constructor(turn, body, fromSeq, sessionId) {
      this.controller = new AbortController();
      this.turn = turn;
      this.body = body;
      this.article = body.parentElement;
      this.fromSeq = fromSeq;
      this.sessionId = sessionId;
      this.text = null; // the text segment being streamed into
      this.thinking = null;
      this.finished = false;
      this.failed = false;
    }

    get onScreen() {
      return this.turn.isConnected;
    }

    clearTyping() {
      const t = $(".typing", this.body);
      if (t) t.remove();
    }

    appendThinking(piece) {
      this.clearTyping();
      if (!this.thinking) {
        const text = el("div", { class: "thinking-text" });
        const box = el("details", { class: "thinking", open: true, "data-live": true }, el("summary", { text: "Thinking" }), text);
        this.body.append(box);
        this.thinking = text;
      }
      this.thinking.append(piece);
    }

    appendText(piece) {
      this.clearTyping();
      if (this.thinking) {
        this.thinking.parentElement.removeAttribute("data-live");
        this.thinking.parentElement.open = false;
        this.thinking = null;
      }
      if (!this.text) {
        this.text = el("div", { class: "md streaming" });
        this.body.append(this.text);
      }
      this.text.append(piece);
    }

    closeSegment() {
      if (this.text) this.text.classList.remove("streaming");
      if (this.thinking) this.thinking.parentElement.removeAttribute("data-live");
      this.text = null;
      this.thinking = null;
    }

    handle(name, data) {
      const stick = this.onScreen && nearBottom();
      if (name === "session") {
        this.sessionId = data.session_id;
        if (this.onScreen && state.sessionId !== this.sessionId) {
          state.sessionId = this.sessionId;
          conv().dataset.sessionId = this.sessionId;
          // htmx's marker, so the back button restores this URL like the ones htmx pushed.
          history.replaceState({ htmx: true }, "", `/c/${encodeURIComponent(this.sessionId)}/`);
          refreshSidebar(this.sessionId);
        }
      } else if (name === "delta") {
        if (data.thinking) this.appendThinking(data.thinking);
        if (data.content) this.appendText(data.content);
      } else if (name === "tool_call") {
        this.clearTyping();
        this.closeSegment();
        this.body.append(toolCard(data));
      } else if (name === "tool_result") {
        const card = $$(".tool-card", this.body).find((c) => c.dataset.callId === (data.id || ""));
        if (card) {
          card.dataset.state = data.is_error ? "error" : "ok";
          card.removeAttribute("data-live");
          const ms = typeof data.duration_ms === "number" ? ` · ${Math.round(data.duration_ms)} ms` : "";
          $(".tool-status", card).textContent = (data.is_error ? "error" : "done") + ms;
          card.append(el("details", { class: "tool-section", open: true }, el("summary", { text: "Result" }), el("pre", { class: "tool-result", text: toolResultText(data.content) })));
        }
        this.body.append(typingIndicator());
      } else if (name === "message") {
        if (data.role === "assistant") this.closeSegment();
      } else if (name === "done") {
        this.finished = true;
        this.closeSegment();
        this.clearTyping();
      } else if (name === "error") {
        this.failed = true;
        this.closeSegment();
        this.clearTyping();
        this.body.append(errorNotice(data.error));
      }
      if (stick) scrollToBottom(true);
    }
  }

  function refreshSidebar(currentId) {
    const url = `/sidebar/?current=${encodeURIComponent(currentId || "")}`;
    return htmx.ajax("GET", url, { target: "#session-list", swap: "outerHTML" });
  }

  function nextSeq() {
    const marks = $$("[data-next-seq]", messagesEl());
    return marks.length ? parseInt(marks[marks.length - 1].dataset.nextSeq, 10) || 0 : 0;
  }

  async function finish(stream) {
    if (stream === state.current) {
      state.current = null;
      setStreamingUI(false);
    }
    stream.article.removeAttribute("aria-busy");
    if (stream.sessionId) refreshSidebar(stream.sessionId === state.sessionId ? stream.sessionId : state.sessionId);
    // Replace the raw streamed text by the stored turn, rendered and sanitized by the server.
    if (stream.finished && !stream.failed && stream.sessionId && stream.onScreen) {
      const url = `/c/${encodeURIComponent(stream.sessionId)}/messages/?from_seq=${stream.fromSeq}`;
      try {
        await htmx.ajax("GET", url, { target: stream.turn, swap: "outerHTML" });
      } catch (err) {
        /* keep the streamed text */
      }
      scrollToBottom(true);
    }
    if (stream.onScreen || !state.current) focusPrompt();
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

    const body = { model_id: modelId, tool_ids: selectedTools(), messages, session_id: state.sessionId || "new" };

    // Show the turn at once; the answer streams into it.
    const list = messagesEl();
    const empty = $(".empty-state", list);
    if (empty) empty.remove();
    const assistantBody = el("div", { class: "assistant-body" }, typingIndicator());
    const article = el("article", { class: "msg msg-assistant", "aria-busy": "true" }, el("div", { class: "avatar", "aria-hidden": "true" }), assistantBody);
    const bubble = userBubble(text, images, audio, template);
    const turn = el("div", { class: "live-turn" }, bubble, article);
    list.append(turn);
    scrollToBottom(true);

    prompt.value = "";
    autosize();
    state.images = [];
    state.audio = [];
    renderAttachments();
    if (template) {
      templateSelect.value = "";
      $("#template-fields").replaceChildren();
    }

    const stream = new Stream(turn, assistantBody, nextSeq(), state.sessionId);
    state.current = stream;
    setStreamingUI(true);
    prompt.focus();

    let res;
    try {
      res = await fetch("/v1/infer/stream", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(body),
        signal: stream.controller.signal,
      });
    } catch (err) {
      stream.failed = true;
      stream.clearTyping();
      assistantBody.append(errorNotice({ code: "network_error", message: "Could not reach the server." }));
      return finish(stream);
    }
    if (!res.ok) {
      let error;
      try {
        error = (await res.json()).error;
      } catch (err) {
        error = { code: `http_${res.status}`, message: res.statusText || "The request failed." };
      }
      stream.failed = true;
      stream.clearTyping();
      assistantBody.append(errorNotice(error));
      bubble.classList.add("failed");
      if (!prompt.value) { prompt.value = text; autosize(); }
      return finish(stream);
    }
    try {
      await readEventStream(res.body, (name, data) => stream.handle(name, data));
    } catch (err) {
      if (!stream.finished && !stream.failed) {
        stream.failed = true;
        stream.clearTyping();
        const aborted = err && err.name === "AbortError";
        assistantBody.append(aborted ? el("div", { class: "note-stopped", text: "Stopped · partial answer kept" })
          : errorNotice({ code: "connection_lost", message: "The connection to the server was lost." }));
      }
    }
    if (!stream.finished && !stream.failed) {
      stream.failed = true;
      assistantBody.append(errorNotice({ code: "connection_lost", message: "The answer ended unexpectedly." }));
    }
    return finish(stream);
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
  if (modelSelect) modelSelect.addEventListener("change", () => { updatePlaceholder(); prompt.focus(); });
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
    scrollToBottom(true);
    focusPrompt();
  }

  document.body.addEventListener("htmx:afterSettle", () => {
    if (conv() !== state.convEl) conversationChanged();
    const active = $(".session-link[aria-current]");
    if (active && state.sessionId) document.title = `${active.textContent.trim()} · agentsite`;
  });

  htmx.onLoad(enhanceCode);
  updateToolCount();
  updatePlaceholder();
  autosize();
  scrollToBottom(true);
  focusPrompt();
})();
