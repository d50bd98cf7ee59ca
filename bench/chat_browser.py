"""The chat page in a real browser (Debian's Chromium driven by Playwright): weight and speed.

Starts the fake model server and one Daphne worker (static files collected and compressed as
in production), logs a browser in, and measures:

* **first load**: the JS and CSS bytes the chat page transfers on a cold load (compressed, as
  the browser received them). Target <= 150 KB.
* **first token**: the same scripted answer, streamed once by a bare ``fetch`` in the page
  (the baseline: request to the first ``delta`` of ``/v1/infer/stream``, i.e. when the model's
  first token reaches the browser; nothing is drawn) and once by the chat (the send to the
  first text painted on screen). Added = chat - baseline, p50 over the runs. Target <= 50 ms.
* **long answer**: a 3,000-word answer of 60 paragraphs streamed over a few seconds. Baseline:
  the bare fetch's request to ``done`` (the stream's own duration); chat: the send to the whole
  answer painted (the rendered Markdown, after the swap). Target: chat <= 1.5 x baseline, and
  no main-thread task over 200 ms meanwhile (the Long Tasks API).

    .venv/bin/python bench/chat_browser.py [-n 5] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._harness import Stack, append_results, md_table, p50, print_table

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "bench-pass-123"
MODEL = "fake-openai"
WEIGHT_KB_MAX = 150
FIRST_TOKEN_ADDED_MS_MAX = 50
LONG_RATIO_MAX = 1.5
LONG_TASK_MS_MAX = 200
LAST_WORD = "w59x49."

# Instruments the page before its own scripts run: when the stream's request leaves, when the
# first streamed text is painted, when the final answer (LAST_WORD in the rendered turn) is
# painted, and the longest main-thread task. "Painted" = the next animation frame after the
# DOM change, the frame that shows it.
PROBE = """
window.__bench = { fetch: 0, first: 0, full: 0, longest: 0 };
(() => {
  const b = window.__bench;
  const original = window.fetch;
  window.fetch = function (url, init) {
    if (String(url).includes("/stream")) { b.fetch = performance.now(); b.first = 0; b.full = 0; b.longest = 0; }
    return original.call(this, url, init);
  };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (b.fetch && e.startTime >= b.fetch) b.longest = Math.max(b.longest, e.duration);
  }).observe({ type: "longtask", buffered: true });
  let waiting = false;
  const seen = () => {
    if (!b.fetch) return;
    if (!b.first && !waiting) {
      const live = document.querySelector(".md.streaming");
      if (live && live.textContent.length) {
        waiting = true;
        requestAnimationFrame(() => { b.first = performance.now(); waiting = false; });
      }
    }
    if (b.first && !b.full && !waiting) {
      const turn = document.querySelectorAll(".turn .md");
      const last = turn.length && turn[turn.length - 1];
      if (last && last.textContent.trim().endsWith(LAST_WORD)) {
        waiting = true;
        requestAnimationFrame(() => { b.full = performance.now(); waiting = false; });
      }
    }
  };
  document.addEventListener("DOMContentLoaded", () => {
    new MutationObserver(seen).observe(document.body, { childList: true, subtree: true, characterData: true });
  });
})();
""".replace("LAST_WORD", json.dumps(LAST_WORD))

_USER = """
from django.contrib.auth import get_user_model
u = get_user_model().objects.get(username="bench")
u.set_password({password!r}); u.save()
"""


def long_answer() -> str:
    return "\n\n".join(" ".join(f"w{p}x{i}" for i in range(50)) + "." for p in range(60))


def script(fake_url: str, reply: dict[str, Any]) -> None:
    httpx.post(fake_url + "/_fake/script", json={"replies": [reply]}, timeout=10).raise_for_status()


# The baseline, in the same page: the same request read with fetch and nothing drawn, so it
# sees the model's tokens when they reach the browser (same login, same connection).
RAW_STREAM = """async ([model, text]) => {
  const csrf = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
  const started = performance.now();
  const res = await fetch("/v1/infer/stream", {
    method: "POST", headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    body: JSON.stringify({ model_id: model, text, session_id: "new" }),
  });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let seen = "", first = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += decoder.decode(value, { stream: true });
    if (!first && seen.includes("event: delta")) first = performance.now() - started;
    if (seen.includes("event: done")) return [first, performance.now() - started];
    seen = seen.slice(-64);
  }
  throw new Error("the stream ended without done");
}"""


def raw_stream(page: Any, text: str) -> tuple[float, float]:
    """(ms to the first delta, ms to done) of one stream into a new chat, read by the page without drawing."""
    first, total = page.evaluate(RAW_STREAM, [MODEL, text])
    return float(first), float(total)


def browser_run(page: Any, text: str, *, full: bool) -> dict[str, float]:
    """Send ``text`` in a new chat, wait until it is answered: the probe's figures (ms)."""
    page.goto(page.url.split("/c/")[0].rstrip("/") + "/")
    page.get_by_label("Model").select_option(MODEL)
    prompt = page.get_by_label("Message", exact=True)
    prompt.fill(text)
    prompt.press("Enter")
    key = "full" if full else "first"
    deadline = time.monotonic() + 60
    # Polled from here: wait_for_function evaluates a string, which the page's CSP forbids.
    while not page.evaluate(f"window.__bench.{key}"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the answer was not painted: {page.evaluate('window.__bench')}")
        time.sleep(0.02)
    page.locator("#send-btn").wait_for(state="visible", timeout=60_000)  # the run is over
    b = page.evaluate("window.__bench")
    return {"first": b["first"] - b["fetch"], "full": b["full"] - b["fetch"], "longest": b["longest"]}


def page_weight(context: Any, url: str) -> tuple[int, int]:
    """(JS+CSS bytes transferred on a cold load, how many such files)."""
    page = context.new_page()
    sizes: list[int] = []

    def on_response(response: Any) -> None:
        if response.request.resource_type in ("script", "stylesheet"):
            s = response.request.sizes()
            sizes.append(s["responseBodySize"] + s["responseHeadersSize"])

    page.on("response", on_response)
    page.goto(url, wait_until="networkidle")
    page.close()
    return sum(sizes), len(sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5, help="runs of each streamed measurement")
    parser.add_argument("--no-append", action="store_true", help="print only; don't touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is not installed", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    # Each scripted answer is for the run measured: no memory-extraction call may take one.
    os.environ["AGENTSITE_MEMORY_EXTRACTION"] = "0"
    with Stack() as stack:
        app = stack.app
        assert app is not None
        # Static files collected and compressed as in production; the worker reads them at start.
        app.manage("collectstatic", "--noinput", "-v", "0")
        app.manage("shell", "-c", _USER.format(password=PASSWORD))
        app.stop()
        app.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_init_script(PROBE)
            page = context.new_page()
            page.goto(app.url + "/login/")
            page.get_by_label("Username").fill("bench")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(app.url + "/")

            weight, files = page_weight(browser.new_context(storage_state=context.storage_state()), app.url + "/")

            short = {"content": "Hello there, " * 20, "chunk_size": 8, "delay_s": 0.01, "first_delay_s": 0.2}
            api_first, web_first = [], []
            for i in range(args.n):
                script(stack.fake.url, short)
                api_first.append(raw_stream(page, f"hi {i}")[0])
                script(stack.fake.url, short)
                web_first.append(browser_run(page, f"hi {i}", full=False)["first"])

            long = {"content": long_answer(), "chunk_size": 24, "delay_s": 0.002}
            api_full, web_full, longest = [], [], []
            for i in range(args.n):
                script(stack.fake.url, long)
                api_full.append(raw_stream(page, f"long {i}")[1])
                script(stack.fake.url, long)
                run = browser_run(page, f"long {i}", full=True)
                web_full.append(run["full"])
                longest.append(run["longest"])
            browser.close()

    added = p50(web_first) - p50(api_first)
    ratio = p50(web_full) / p50(api_full)
    checks = {
        "weight": weight / 1024 <= WEIGHT_KB_MAX,
        "first": added <= FIRST_TOKEN_ADDED_MS_MAX,
        "ratio": ratio <= LONG_RATIO_MAX,
        "longtask": max(longest) <= LONG_TASK_MS_MAX,
    }
    headers = ["measure", "baseline", "browser", "result", "target", "ok"]
    rows = [
        ["first load JS+CSS", "-", f"{files} files", f"{weight / 1024:.1f} KB", f"<= {WEIGHT_KB_MAX} KB", checks["weight"]],
        ["first token (p50 ms)", f"{p50(api_first):.1f}", f"{p50(web_first):.1f}", f"+{added:.1f} ms",
         f"<= +{FIRST_TOKEN_ADDED_MS_MAX} ms", checks["first"]],
        ["3,000-word answer (p50 ms)", f"{p50(api_full):.0f}", f"{p50(web_full):.0f}", f"x{ratio:.2f}",
         f"<= x{LONG_RATIO_MAX}", checks["ratio"]],
        ["longest main-thread task (ms)", "-", f"{max(longest):.0f}", f"{max(longest):.0f}", f"<= {LONG_TASK_MS_MAX}",
         checks["longtask"]],
    ]
    print_table(headers, rows)
    if not args.no_append:
        body = f"`bench/chat_browser.py -n {args.n}` (Chromium, 1280x800; baseline = a bare fetch in the same page, same run)\n\n"
        append_results("Chat page in the browser", body + md_table(headers, rows))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
