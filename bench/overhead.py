"""Per-request overhead of the app: direct to the model server vs through /v1.

Starts the fake model server (answering instantly) and one Daphne worker, then, for each
protocol (openai, ollama), measures N sequential requests of each kind, interleaved so drift
hits both sides alike:

* **model round**: the exact request body the runtime sends upstream (captured from the fake's
  log), POSTed directly to the fake, vs ``POST /v1/infer`` (one round, no tools, stateless).
* **TTFT** (time to first token): a streaming request directly to the fake, timed until the
  first chunk carrying content text, vs ``POST /v1/infer/stream``, timed until the first
  ``delta`` event. Both streams are read to the end before the next request.

Added = p50(through the app) - p50(direct), likewise for p95. Target: added <= 1.5 ms p50 per
model round and for TTFT.

A third side, the **bare relay** (``bench/_relay.py``: Daphne and ``httpx.AsyncClient`` with
nothing else, sent the same upstream bodies), is measured in the same rounds: the floor any
Daphne app that calls the model server with httpx pays. ``ours`` = via app - relay is what the
runtime itself adds on top of that floor.

    .venv/bin/python bench/overhead.py [-n 300] [--warmup 50] [--no-append]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._harness import (
    HOST,
    PROTOCOLS,
    PY,
    ROOT,
    Stack,
    append_results,
    free_port,
    machine_line,
    md_table,
    ms,
    p50,
    p95,
    print_table,
    stop,
)

TARGET_MS = 1.5
TEXT = "Say ok."
# A short multi-chunk answer: 20 content chunks, no delay between them ("instant" server).
CHUNKS = 20


def _upstream_path(protocol: str) -> str:
    return "/v1/chat/completions" if protocol == "openai" else "/api/chat"


def captured_bodies(fake_url: str, app_url: str, headers: dict[str, str], protocol: str) -> tuple[dict, dict]:
    """The bodies the runtime sends upstream for /v1/infer and /v1/infer/stream (from the fake's log)."""
    with httpx.Client(timeout=30) as c:
        c.post(fake_url + "/_fake/reset").raise_for_status()
        body = {"model_id": f"fake-{protocol}", "text": TEXT}
        c.post(app_url + "/v1/infer", json=body, headers=headers).raise_for_status()
        with c.stream("POST", app_url + "/v1/infer/stream", json=body, headers=headers) as r:
            r.raise_for_status()
            r.read()
        reqs = c.get(fake_url + "/_fake/requests").json()["requests"]
        c.post(fake_url + "/_fake/reset").raise_for_status()
    chat = [r["json"] for r in reqs if r["path"] == _upstream_path(protocol)]
    plain, streaming = chat[0], chat[1]
    assert plain.get("stream") is False and streaming.get("stream", True) is not False, (plain, streaming)
    return plain, streaming


def first_token_direct(protocol: str) -> Callable[[str], bool]:
    """Reads the stream; returns True at the first line that carries content text."""

    def openai(line: str) -> bool:
        if not line.startswith("data: ") or line == "data: [DONE]":
            return False
        choices = json.loads(line[6:]).get("choices") or []
        return bool(choices and (choices[0].get("delta") or {}).get("content"))

    def ollama(line: str) -> bool:
        return bool(line and (json.loads(line).get("message") or {}).get("content"))

    return openai if protocol == "openai" else ollama


def timed_stream(
    client: httpx.Client, url: str, body: dict, headers: dict[str, str], is_first: Callable[[str], bool]
) -> tuple[float, float]:
    """(time to first token, time to end of stream) in seconds."""
    t0 = time.perf_counter()
    first = None
    with client.stream("POST", url, json=body, headers=headers) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {r.status_code} {r.read()[:300]!r}")
        for line in r.iter_lines():
            if first is None and is_first(line):
                first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    if first is None:
        raise RuntimeError(f"{url}: no token in the stream")
    return first, total


def app_first_token() -> Callable[[str], bool]:
    state = {"delta": False}

    def check(line: str) -> bool:
        if line.startswith("event: "):
            state["delta"] = line == "event: delta"
            return False
        return state["delta"] and line.startswith("data: ") and '"content"' in line

    return check


def client() -> httpx.Client:
    """A keep-alive client with TCP_NODELAY, as the engine's own (anyio) client has.

    httpx's sync transport leaves Nagle on; with headers and body in two writes, the body then
    waits for the server's delayed ACK (~40 ms on Linux), which would swamp what we measure.
    """
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    return httpx.Client(timeout=30, transport=httpx.HTTPTransport(socket_options=nodelay))


def timed_post(client: httpx.Client, url: str, body: dict, headers: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = client.post(url, json=body, headers=headers)
    dt = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {r.status_code} {r.text[:300]}")
    return dt


class Relay:
    """``bench/_relay.py`` served by Daphne in its own process, forwarding to ``upstream``."""

    def __init__(self, upstream: str) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}/"
        env = {**os.environ, "RELAY_UPSTREAM": upstream, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([PY, "-m", "daphne", "-v", "0", "-b", HOST, "-p", str(self.port), "bench._relay:app"],
                                     cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> Relay:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("the bare relay did not start in 30 s")

    def __exit__(self, *exc: object) -> None:
        stop(self.proc, timeout=10)


SIDES = ("direct", "relay", "app")


def measure(stack: Stack, protocol: str, n: int, warmup: int) -> dict[str, Any]:
    fake, app = stack.fake, stack.app
    assert app is not None
    plain, streaming = captured_bodies(fake.url, app.url, app.headers, protocol)
    direct_url = fake.url + _upstream_path(protocol)
    infer_body = {"model_id": f"fake-{protocol}", "text": TEXT}
    out: dict[str, list[float]] = {f"{kind}_{side}": [] for kind in ("round", "ttft", "stream") for side in SIDES}
    direct_first = first_token_direct(protocol)
    with Relay(direct_url) as relay, client() as dc, client() as rc, client() as ac:
        for i in range(warmup + n):
            timed = {
                "round_direct": timed_post(dc, direct_url, plain, {}),
                "round_relay": timed_post(rc, relay.url, plain, {}),
                "round_app": timed_post(ac, app.url + "/v1/infer", infer_body, app.headers),
            }
            timed["ttft_direct"], timed["stream_direct"] = timed_stream(dc, direct_url, streaming, {}, direct_first)
            timed["ttft_relay"], timed["stream_relay"] = timed_stream(rc, relay.url, streaming, {}, direct_first)
            timed["ttft_app"], timed["stream_app"] = timed_stream(
                ac, app.url + "/v1/infer/stream", infer_body, app.headers, app_first_token())
            if i >= warmup:
                for key, value in timed.items():
                    out[key].append(value)
            if i % 100 == 99:  # the fake keeps a log of every request; keep it small
                dc.post(fake.url + "/_fake/reset")
    return out


def summarize(results: dict[str, dict[str, list[float]]]) -> tuple[list[str], list[list[Any]], dict[str, float]]:
    headers = ["protocol", "measure", "direct p50", "direct p95", "via app p50", "via app p95", "added p50", "added p95",
               "relay added p50", "ours p50", "app/direct p50"]
    rows: list[list[Any]] = []
    added: dict[str, float] = {}
    for protocol, r in results.items():
        for kind, label in (
            ("round", "model round (/v1/infer)"),
            ("ttft", "TTFT (/v1/infer/stream)"),
            ("stream", "whole stream (/v1/infer/stream)"),
        ):
            d, rl, a = r[f"{kind}_direct"], r[f"{kind}_relay"], r[f"{kind}_app"]
            row = [protocol, label, ms(p50(d)), ms(p95(d)), ms(p50(a)), ms(p95(a)), ms(p50(a) - p50(d)), ms(p95(a) - p95(d)),
                   ms(p50(rl) - p50(d)), ms(p50(a) - p50(rl)), f"x{p50(a) / p50(d):.2f}"]
            rows.append(row)
            added[f"{protocol}/{kind}"] = row[6]
    return headers, rows, added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=300, help="measured requests per kind and protocol")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--no-append", action="store_true", help="don't append to docs/benchmarks.md")
    args = parser.parse_args(argv)

    print(f"overhead: {machine_line()}")
    results: dict[str, dict[str, list[float]]] = {}
    t0 = time.monotonic()
    with Stack(app=True, chunks=CHUNKS, delay=0.0) as stack:
        gc.disable()  # the client's own GC pauses would land on random samples
        try:
            for protocol in PROTOCOLS:
                print(f"  {protocol}: {args.warmup} warm-up + {args.n} measured requests of each kind ...", flush=True)
                results[protocol] = measure(stack, protocol, args.n, args.warmup)
                gc.collect()
        finally:
            gc.enable()
    elapsed = time.monotonic() - t0
    headers, rows, added = summarize(results)
    print()
    print_table(headers, rows)
    verdict = []
    for key in ("round", "ttft"):
        worst = max(v for k, v in added.items() if k.endswith("/" + key))
        ok = worst <= TARGET_MS
        verdict.append(f"{'model round' if key == 'round' else 'TTFT'}: worst added p50 {worst:.2f} ms "
                       f"({'meets' if ok else 'MISSES'} the {TARGET_MS} ms target)")  # fmt: skip
    print("\n" + "\n".join(verdict) + f"\n(ran {elapsed:.0f} s)")
    if not args.no_append:
        body = (
            f"`bench/overhead.py`: {args.n} measured sequential requests per kind and protocol (after "
            f"{args.warmup} warm-up), one httpx client with keep-alive per side, direct and via-app "
            f"requests interleaved. The fake answers instantly with {CHUNKS} content chunks; the direct "
            f"request replays the exact body the runtime sends upstream. Times in ms; added = via app - "
            f"direct. Target: added p50 <= {TARGET_MS} ms per model round and for TTFT. Relay added = the bare "
            f"relay (bench/_relay.py: Daphne + httpx.AsyncClient, nothing else) - direct; ours = via app - relay.\n\n"
            + md_table(headers, rows)
            + "\n\n"
            + "\n".join(f"- {v}" for v in verdict)
        )
        append_results("Overhead per request", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
