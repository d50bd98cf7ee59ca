"""MCP call latency and MCP process sharing, through a real Daphne worker.

Latency (p50/p95, sequential calls, time server = ``mcp-server-time`` over stdio):

* (a) ``POST /v1/tools/call`` on ``time.get_current_time`` through ``manage.py serve``
  (the server registered with ``POST /v1/tools/mcp``; one shared connection per worker);
* (b) the per-agent-spawn pattern: a fresh stdio process per call, ``initialize`` +
  ``tools/call`` with the ``mcp`` SDK (``mcp.Client(StdioServerParameters(...))``), timed until
  the result is in hand (teardown reported separately);
* (c) the raw SDK call on an already open session, in this process (``client.call_tool``).

Targets: (a) at least 50x faster than (b) at p50; (a) adds at most 3 ms over (c) at p50.

Sharing: 50 concurrent agents against one worker (25 direct calls + 25 ``/v1/infer`` runs in
which the fake model calls ``time_get_current_time``); the worker's ``mcp_server_time`` child
processes are counted while they run and after. Target: 1 per worker.

Run: ``.venv/bin/python bench/mcp_call.py [--calls 300] [--spawns 20] [--no-append]``.
127.0.0.1 only; a throwaway data dir; results appended to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._harness import (
    FAKE_MODEL,
    PY,
    ChildSampler,
    Stack,
    append_results,
    machine_line,
    md_table,
    ms,
    p50,
    p95,
    print_table,
)
from tests.mcp_servers import children_running

TIME_ARGS = ["-m", "mcp_server_time", "--local-timezone", "UTC"]
TOOL_ID = "time.get_current_time"
ARGS = {"timezone": "UTC"}


# ---- (b) and (c): the SDK alone --------------------------------------------------------------


def _params():
    from mcp import StdioServerParameters

    return StdioServerParameters(command=PY, args=TIME_ARGS)


async def sdk_spawn_per_call(n: int) -> tuple[list[float], list[float]]:
    """(b): spawn + initialize + tools/call per call. Returns (to-result, teardown) seconds."""
    from mcp import Client

    to_result, teardown = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        client = Client(_params(), mode="legacy")
        await client.__aenter__()
        res = await client.call_tool("get_current_time", ARGS)
        t1 = time.perf_counter()
        await client.__aexit__(None, None, None)
        t2 = time.perf_counter()
        assert not res.is_error, res
        to_result.append(t1 - t0)
        teardown.append(t2 - t1)
    return to_result, teardown


async def interleaved(http: httpx.Client, n: int, block: int = 25, warmup: int = 20) -> dict[str, list[float]]:
    """(a) and (c) in alternating blocks of ``block`` calls, so that load from anything else on
    the machine hits both alike. (c) is the raw SDK call on one open session in this process;
    (a) is POST /v1/tools/call. Two references run in the same blocks: GET /healthz (HTTP and
    Daphne alone) and GET /v1/tools/{id} (plus API-key auth and one tool read)."""
    from mcp import Client

    a, a_server, c, health, tool_get = [], [], [], [], []

    def timed_get(path: str) -> float:
        t0 = time.perf_counter()
        http.get(path).raise_for_status()
        return time.perf_counter() - t0

    async with Client(_params(), mode="legacy") as client:

        async def sdk_call() -> float:
            t0 = time.perf_counter()
            res = await client.call_tool("get_current_time", ARGS)
            dt = time.perf_counter() - t0
            assert not res.is_error, res
            return dt

        for _ in range(warmup):
            await sdk_call()
            http_call(http)
        while len(c) < n:
            k = min(block, n - len(c))
            for _ in range(k):
                wall, server = http_call(http)
                a.append(wall)
                a_server.append(server)
            for _ in range(k):
                c.append(await sdk_call())
            for _ in range(k):
                health.append(timed_get("/healthz"))
            for _ in range(k):
                tool_get.append(timed_get(f"/v1/tools/{TOOL_ID}"))
    return {"a": a, "a_server": a_server, "c": c, "health": health, "tool_get": tool_get}


# ---- (a): through the worker -----------------------------------------------------------------


def http_call(http: httpx.Client) -> tuple[float, float]:
    """(a): one POST /v1/tools/call. Returns (client wall time, the server's duration_ms in s)."""
    t0 = time.perf_counter()
    r = http.post("/v1/tools/call", json={"tool_id": TOOL_ID, "arguments": ARGS})
    dt = time.perf_counter() - t0
    r.raise_for_status()
    body = r.json()
    assert not body["is_error"], body
    return dt, body["duration_ms"] / 1000


# ---- sharing ---------------------------------------------------------------------------------


def mcp_children(worker_pid: int) -> list[int]:
    """Live direct children of the worker whose command line runs mcp_server_time."""
    return children_running("mcp_server_time", worker_pid)


async def sharing_burst(url: str, headers: dict[str, str], model_id: str, n_direct: int, n_infer: int) -> dict:
    async def direct(c: httpx.AsyncClient) -> bool:
        r = await c.post("/v1/tools/call", json={"tool_id": TOOL_ID, "arguments": ARGS})
        return r.status_code == 200 and not r.json()["is_error"]

    async def infer(c: httpx.AsyncClient) -> tuple[bool, int]:
        r = await c.post(
            "/v1/infer",
            json={"model_id": model_id, "tool_ids": [TOOL_ID], "text": "What time is it in UTC?", "max_tool_rounds": 5},
        )
        if r.status_code != 200:
            return False, 0
        msgs = r.json()["messages"]
        tool_ok = [m for m in msgs if m.get("role") == "tool" and not m.get("is_error")]
        return True, len(tool_ok)

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as c:
        t0 = time.perf_counter()
        jobs = [direct(c) for _ in range(n_direct)] + [infer(c) for _ in range(n_infer)]
        results = await asyncio.gather(*jobs)
        wall = time.perf_counter() - t0
    direct_ok = sum(1 for r in results[:n_direct] if r)
    infer_res = results[n_direct:]
    return {
        "direct_ok": direct_ok,
        "infer_ok": sum(1 for ok, _ in infer_res if ok),
        "infer_tool_results": sum(k for _, k in infer_res),
        "wall_s": wall,
    }


# ---- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300, help="timed calls for (a) and (c)")
    ap.add_argument("--spawns", type=int, default=20, help="fresh processes for (b)")
    ap.add_argument("--agents", type=int, default=50, help="concurrent agents in the sharing bench (half direct, half infer)")
    ap.add_argument("--no-append", action="store_true", help="don't append to docs/benchmarks.md")
    opts = ap.parse_args(argv)

    load_before = os.getloadavg()[0]
    with Stack(app=True) as stack:
        app = stack.app
        assert app is not None
        http = httpx.Client(base_url=app.url, headers=app.headers, timeout=60)
        reg = http.post("/v1/tools/mcp", json={"mcpServers": {"time": {"command": PY, "args": TIME_ARGS}}})
        reg.raise_for_status()
        status = reg.json()["servers"]["time"]
        if status["status"] != "connected":
            raise SystemExit(f"time server did not connect: {status}")
        print(f"registered: {status}")

        print(f"(a) and (c): {opts.calls} x POST /v1/tools/call and {opts.calls} x SDK call_tool, interleaved ...")
        runs = asyncio.run(interleaved(http, opts.calls))
        a, a_server, c = runs["a"], runs["a_server"], runs["c"]
        print(f"(b) {opts.spawns} x spawn + initialize + tools/call ...")
        b, b_teardown = asyncio.run(sdk_spawn_per_call(opts.spawns))
        kids_after_latency = mcp_children(app.pid)

        # Sharing: half direct calls, half infer runs with the fake model calling the time tool.
        n_direct = opts.agents // 2
        n_infer = opts.agents - n_direct
        fake = httpx.Client(base_url=stack.fake.url, timeout=10)
        fake.post("/_fake/reset").raise_for_status()
        tool_reply = {"tool_calls": [{"name": "time_get_current_time", "arguments": ARGS}]}
        fake.post("/_fake/script", json={"model": FAKE_MODEL, "replies": [tool_reply] * n_infer}).raise_for_status()
        # every later model call gets the fake's default content reply
        print(f"sharing: {n_direct} direct calls + {n_infer} /v1/infer runs, concurrently ...")
        with ChildSampler(app.pid, "mcp_server_time") as sampler:
            burst = asyncio.run(sharing_burst(app.url, app.headers, "fake-ollama", n_direct, n_infer))
            time.sleep(0.2)
        kids_after = mcp_children(app.pid)
        mcp_status = http.get("/v1/tools/mcp").json()["data"]
        http.close()
        fake.close()

    load = f"1-min load average {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end ({os.cpu_count()} cores)"
    a50, a95, b50, b95, c50, c95 = p50(a), p95(a), p50(b), p95(b), p50(c), p95(c)
    speedup = b50 / a50
    overhead = ms(a50 - c50)
    latency_rows = [
        ["(a) POST /v1/tools/call via worker", len(a), ms(a50), ms(a95), ""],
        ["    (server-side duration_ms of (a))", len(a_server), ms(p50(a_server)), ms(p95(a_server)), ""],
        ["(b) fresh process + initialize + call", len(b), ms(b50), ms(b95), ""],
        ["    (b) teardown after the result", len(b_teardown), ms(p50(b_teardown)), ms(p95(b_teardown)), ""],
        ["(c) SDK call on an open session", len(c), ms(c50), ms(c95), ""],
        ["(ref) GET /healthz via worker", len(runs["health"]), ms(p50(runs["health"])), ms(p95(runs["health"])), ""],
        ["(ref) GET /v1/tools/{id} via worker", len(runs["tool_get"]), ms(p50(runs["tool_get"])),
         ms(p95(runs["tool_get"])), ""],
    ]
    targets = [
        ["(b) / (a) at p50", f"{speedup:.0f}x", ">= 50x", "PASS" if speedup >= 50 else "FAIL"],
        ["(a) - (c) at p50", f"{overhead:.2f} ms", "<= 3 ms", "PASS" if overhead <= 3 else "FAIL"],
        ["(a) - (c) at p95", f"{ms(a95 - c95):.2f} ms", "(info)", ""],
        [
            f"mcp_server_time children of the worker, max during {opts.agents} agents",
            str(sampler.max_count),
            "1",
            "PASS" if sampler.max_count == 1 else "FAIL",
        ],
        ["distinct child pids seen (latency phase + burst)", str(len(sampler.pids | set(kids_after_latency))), "1", ""],
        ["children after the burst", str(len(kids_after)), "1", ""],
        [
            f"burst: direct ok / infer ok / infer tool results ({burst['wall_s']:.2f} s)",
            f"{burst['direct_ok']}/{n_direct}, {burst['infer_ok']}/{n_infer}, {burst['infer_tool_results']}",
            f"{n_direct}, {n_infer}, {n_infer}",
            "PASS"
            if (burst["direct_ok"], burst["infer_ok"], burst["infer_tool_results"]) == (n_direct, n_infer, n_infer)
            else "FAIL",
        ],
    ]
    print()
    print_table(["latency", "n", "p50 ms", "p95 ms", ""], latency_rows)
    print()
    print_table(["figure", "measured", "target", "result"], targets)
    print(f"\nmachine: {machine_line()}; {load}")
    print(f"worker MCP status: {[(s['name'], s['status']) for s in mcp_status]}")

    if not opts.no_append:
        body = (
            "`.venv/bin/python bench/mcp_call.py` — the time server (`mcp-server-time`, stdio, "
            "`python -m mcp_server_time --local-timezone UTC`) registered through `POST /v1/tools/mcp` "
            "on one Daphne worker; sequential calls of `get_current_time {\"timezone\": \"UTC\"}` "
            f"({opts.calls} timed after 20 warm-up for (a) and (c), run in alternating blocks of 25 so that other "
            f"load hits both alike; {opts.spawns} spawns for (b)); "
            "the SDK side uses `mcp.Client(..., mode=\"legacy\")` as the worker does. (b) is timed "
            "until the result is in hand; its teardown (stdin close, process exit) is listed apart. "
            f"{load}.\n\n"
            + md_table(["latency", "n", "p50 ms", "p95 ms", ""], latency_rows)
            + "\n\n"
            + f"Sharing: {opts.agents} concurrent agents against one worker ({n_direct} `POST /v1/tools/call` + "
            f"{n_infer} `POST /v1/infer` runs whose fake model (ollama protocol) calls `time_get_current_time`); "
            "the worker's `mcp_server_time` child processes polled every 5 ms from /proc during the burst.\n\n"
            + md_table(["figure", "measured", "target", "result"], targets)
        )
        append_results("MCP calls: shared connection vs spawn per call (bench/mcp_call.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
