"""Time the runtime adds per round of a 10-round tool loop with instant tools.

Method. The fake model server (a separate process, answering instantly) is scripted to ask for
one tool call in each of 10 rounds, then to answer; with ``max_tool_rounds=10`` that is 11 model
calls and 10 tool executions per run. Each run is timed end to end in three ways:

* **SDK**: the in-process ``Runtime`` (in-memory registries, no Django) with ``ainfer``, on one
  long-lived event loop; once with a sync ``@tool`` function (run in a worker thread, as the
  runtime does for sync tools) and once with an async one;
* **HTTP**: ``POST /v1/infer`` to a Daphne worker, the tool registered as ``callable``
  ``bench._tools:echo`` (includes the fixed per-request cost measured by bench/overhead.py);
* **direct**: the 11 exact request bodies the runtime sent (captured from the fake's log),
  replayed back to back to the fake with the same scripted replies: the model server's own
  time for the same 11 calls; once with a sync keep-alive httpx client (TCP_NODELAY, the
  cheapest client) and once with httpx.AsyncClient (the library the engine uses upstream, so
  the difference to it is the runtime's own loop, tool execution and event plumbing).

Added per round = (p50 of the run - p50 of a direct replay) / 11 model calls.

    .venv/bin/python bench/tool_loop.py [-n 40] [--warmup 5] [--no-append]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._harness import FAKE_MODEL, PROTOCOLS, Stack, append_results, machine_line, md_table, ms, p50, p95, print_table
from bench._tools import aecho, echo
from bench.overhead import client as sync_client
from inference.engine import ModelRegistry, Runtime, ToolRegistry
from inference.engine.http import aclose_clients
from inference.engine.types import InferenceRequest, ModelConfig

ROUNDS = 10
CALLS = ROUNDS + 1
TEXT = "Call bench_echo ten times, then say done."


def script(fake_url: str) -> None:
    replies: list[Any] = [
        {"tool_calls": [{"name": "bench_echo", "arguments": {"x": i}, "id": f"call_{i}"}]} for i in range(ROUNDS)
    ]
    replies.append({"content": "done"})
    with httpx.Client(timeout=10) as c:
        c.post(fake_url + "/_fake/reset").raise_for_status()
        c.post(fake_url + "/_fake/script", json={"model": None, "replies": replies}).raise_for_status()


def recorded_bodies(fake_url: str, protocol: str) -> list[dict]:
    path = "/v1/chat/completions" if protocol == "openai" else "/api/chat"
    reqs = httpx.get(fake_url + "/_fake/requests", timeout=10).json()["requests"]
    return [r["json"] for r in reqs if r["path"] == path]


def check(result: dict[str, Any], label: str) -> None:
    if result.get("tool_rounds") != ROUNDS or result.get("content") != "done":
        raise RuntimeError(
            f"{label}: unexpected result {result.get('tool_rounds')=} {result.get('content')=} {result.get('finish_reason')=}"
        )


async def run_sdk(fake_url: str, protocol: str, tool_id: str, n: int, warmup: int) -> tuple[list[float], list[dict]]:
    base = fake_url + "/v1" if protocol == "openai" else fake_url
    model = ModelConfig(model_id="m", api_protocol=protocol, api_base=base, model_name=FAKE_MODEL)
    rt = Runtime(ModelRegistry([model]), ToolRegistry([echo, aecho]))
    request = InferenceRequest.of("m", TEXT, tool_ids=[tool_id], max_tool_rounds=ROUNDS)
    times, bodies = [], []
    try:
        for i in range(warmup + n):
            await asyncio.to_thread(script, fake_url)
            t0 = time.perf_counter()
            result = await rt.ainfer(request)
            dt = time.perf_counter() - t0
            check(result.to_dict(), f"sdk/{protocol}/{tool_id}")
            if i == 0:
                bodies = await asyncio.to_thread(recorded_bodies, fake_url, protocol)
            if i >= warmup:
                times.append(dt)
    finally:
        await aclose_clients()
    return times, bodies


def run_http(stack: Stack, protocol: str, n: int, warmup: int) -> list[float]:
    app = stack.app
    assert app is not None
    body = {"model_id": f"fake-{protocol}", "text": TEXT, "tool_ids": ["bench_echo"], "max_tool_rounds": ROUNDS}
    times = []
    with sync_client() as c:
        for i in range(warmup + n):
            script(stack.fake.url)
            t0 = time.perf_counter()
            r = c.post(app.url + "/v1/infer", json=body, headers=app.headers)
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                raise RuntimeError(f"/v1/infer: HTTP {r.status_code} {r.text[:300]}")
            check(r.json(), f"http/{protocol}")
            if i >= warmup:
                times.append(dt)
    return times


def run_direct(fake_url: str, protocol: str, bodies: list[dict], n: int, warmup: int) -> list[float]:
    assert len(bodies) == CALLS, f"expected {CALLS} recorded model calls, got {len(bodies)}"
    url = fake_url + ("/v1/chat/completions" if protocol == "openai" else "/api/chat")
    times = []
    with sync_client() as c:
        for i in range(warmup + n):
            script(fake_url)
            t0 = time.perf_counter()
            for b in bodies:
                r = c.post(url, json=b)
                if r.status_code != 200:
                    raise RuntimeError(f"direct: HTTP {r.status_code} {r.text[:300]}")
            dt = time.perf_counter() - t0
            if i >= warmup:
                times.append(dt)
    return times


async def run_direct_async(fake_url: str, protocol: str, bodies: list[dict], n: int, warmup: int) -> list[float]:
    """The same replay with httpx.AsyncClient, the client library the engine uses upstream."""
    url = fake_url + ("/v1/chat/completions" if protocol == "openai" else "/api/chat")
    times = []
    async with httpx.AsyncClient(timeout=30) as c:
        for i in range(warmup + n):
            await asyncio.to_thread(script, fake_url)
            t0 = time.perf_counter()
            for b in bodies:
                r = await c.post(url, json=b)
                if r.status_code != 200:
                    raise RuntimeError(f"direct: HTTP {r.status_code} {r.text[:300]}")
            dt = time.perf_counter() - t0
            if i >= warmup:
                times.append(dt)
    return times


def register_tool(stack: Stack) -> None:
    app = stack.app
    assert app is not None
    meta = echo.__agentsite_tool__
    spec = {"tool_id": "bench_echo", "tool_type": "function", "name": "bench_echo", "description": meta.description,
            "parameters": dict(meta.parameters), "callable": "bench._tools:echo"}  # fmt: skip
    r = httpx.post(app.url + "/v1/tools", json=spec, headers=app.headers, timeout=30)
    if r.status_code not in (200, 201):
        raise RuntimeError(f"registering the tool: HTTP {r.status_code} {r.text[:300]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=40, help="measured runs per mode and protocol")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    print(f"tool_loop: {machine_line()}")
    rows: list[list[Any]] = []
    with Stack(app=True) as stack:
        register_tool(stack)
        for protocol in PROTOCOLS:
            print(f"  {protocol}: {args.warmup} warm-up + {args.n} measured runs per mode ...", flush=True)
            sdk_sync, bodies = asyncio.run(run_sdk(stack.fake.url, protocol, "bench_echo", args.n, args.warmup))
            sdk_async, _ = asyncio.run(run_sdk(stack.fake.url, protocol, "bench_aecho", args.n, args.warmup))
            via_http = run_http(stack, protocol, args.n, args.warmup)
            direct = run_direct(stack.fake.url, protocol, bodies, args.n, args.warmup)
            direct_async = asyncio.run(run_direct_async(stack.fake.url, protocol, bodies, args.n, args.warmup))
            base, base_async = p50(direct), p50(direct_async)
            for label, ts in (("direct replay (11 calls)", direct), ("direct replay, async httpx", direct_async),
                              ("SDK, sync tool", sdk_sync), ("SDK, async tool", sdk_async),
                              ("HTTP /v1/infer, sync tool", via_http)):  # fmt: skip
                direct_row = ts is direct or ts is direct_async
                added = "-" if direct_row else f"{ms(p50(ts) - base) / CALLS:.2f}"
                added_async = "-" if direct_row else f"{ms(p50(ts) - base_async) / CALLS:.2f}"
                rows.append([protocol, label, ms(p50(ts)), ms(p95(ts)), added, added_async])
    headers = ["protocol", "mode", "run p50 ms", "run p95 ms", "added/round vs sync replay", "added/round vs async replay"]
    print()
    print_table(headers, rows)
    method = (
        f"Method: {ROUNDS} rounds with one instant tool call each plus the final answer = {CALLS} model "
        "calls per run; the fake server is a separate process answering instantly. Added per round = "
        f"(p50 of the run - p50 of replaying the same {CALLS} captured request bodies directly, with a sync "
        f"httpx client or with httpx.AsyncClient as the engine uses) / {CALLS}. "
        "SDK = in-process Runtime.ainfer on one event loop (no Django); HTTP = POST /v1/infer to one "
        "Daphne worker (its fixed per-request cost, see the overhead bench, is spread over the 11 rounds)."
    )
    print("\n" + method)
    if not args.no_append:
        body = f"`bench/tool_loop.py`: {args.n} measured runs per mode and protocol (after {args.warmup} warm-up).\n\n"
        body += md_table(headers, rows) + "\n\n" + method
        append_results("Tool loop: 10 rounds, instant tools", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
