"""A 20 MB MCP tool result, and registering six MCP servers, through a real Daphne worker.

Large result (the SDK-built fixture server ``tests/mcp_servers/prod_server.py`` over stdio, tool
``big`` returning 20 MB of text):

* (a) ``POST /v1/tools/call`` through ``manage.py serve``, the whole JSON answer read;
* (r) the raw SDK: ``mcp.Client`` on an open stdio session in this process, ``call_tool``.

Rounds alternate (a) and (r), so load from elsewhere on the machine hits both alike. Goal: (a)
at most 1.5x (r) at the median. The worker's RSS is sampled: idle before, peak during, and
after the calls (memory should return to about its idle level).

Registration: six servers that each take ``--start-delay`` s to start (as ``uvx``/``npx`` do),
in one ``POST /v1/tools/mcp``, against one such server alone. Goal: at most 1.5x. Each round
also starts the same servers with the raw SDK from this process (``mcp.Client`` over stdio, the
handshake and ``tools/list``; one alone, then six at once): that is what the machine allows,
since each fixture server spends about a second of CPU starting (Python and the SDK), and six
of them share the cores. The CPU the servers used and the load average are printed; medians of
``--reg-rounds`` rounds.

Run: ``.venv/bin/python bench/mcp_large.py [--rounds 5] [--mb 20] [--reg-rounds 5]
[--registration-only] [--no-append]``.
127.0.0.1 only; a throwaway data dir; results appended to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._harness import PY, ROOT, RssSampler, Stack, append_results, machine_line, md_table, print_table, proc_status
from tests.mcp_servers import PROD_MODULE

_SUPERUSER = (
    "from django.contrib.auth import get_user_model; "
    "get_user_model().objects.filter(username='bench').update(is_superuser=True)"
)


def server_config(count_dir: Path, start_delay: float = 0.0) -> dict[str, Any]:
    env = {"PROD_COUNT_DIR": str(count_dir), "PROD_START_DELAY": str(start_delay)}
    return {"command": PY, "args": ["-m", PROD_MODULE], "cwd": str(ROOT), "env": env}


def http_call(http: httpx.Client, mb: float) -> float:
    t0 = time.perf_counter()
    res = http.post("/v1/tools/call", json={"tool_id": "big.big", "arguments": {"mb": mb}})
    body = res.json()
    dt = time.perf_counter() - t0
    assert res.status_code == 200 and not body["is_error"], str(body)[:300]
    assert len(body["content"][0]["text"]) == int(mb * 1024 * 1024)
    return dt


async def large_rounds(http: httpx.Client, count_dir: Path, mb: float, rounds: int, worker_pid: int) -> dict[str, Any]:
    from mcp import Client, StdioServerParameters

    cfg = server_config(count_dir)
    params = StdioServerParameters(command=cfg["command"], args=cfg["args"], cwd=cfg["cwd"], env=cfg["env"])
    a, r = [], []
    http_call(http, 1)  # warm up: connection open, code paths loaded
    idle_kb = proc_status(worker_pid).get("VmRSS", 0)
    async with Client(params) as client:
        await client.call_tool("big", {"mb": 1})
        with RssSampler(worker_pid) as rss:
            for _ in range(rounds):
                a.append(await asyncio.to_thread(http_call, http, mb))
                t0 = time.perf_counter()
                res = await client.call_tool("big", {"mb": mb})
                r.append(time.perf_counter() - t0)
                assert not res.is_error and len(res.content[0].text) == int(mb * 1024 * 1024)  # type: ignore[union-attr]
    await asyncio.sleep(2)
    after_kb = proc_status(worker_pid).get("VmRSS", 0)
    return {"a": a, "r": r, "idle_kb": idle_kb, "peak_kb": rss.peak_kb, "after_kb": after_kb}


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # children reaped so far
    return usage.ru_utime + usage.ru_stime


async def raw_start(cfg: dict[str, Any], n: int) -> tuple[float, float]:
    """Start ``n`` servers at once with the raw SDK, each up to its first ``tools/list``: the
    seconds until all have listed, and the CPU seconds they used (start to stop)."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=cfg["command"], args=cfg["args"], cwd=cfg["cwd"], env=cfg["env"])
    listed, release = asyncio.Semaphore(0), asyncio.Event()

    async def one() -> None:
        # entered and left in this task (C-3); the server's stderr (its log) is not ours to print
        with open(os.devnull, "w") as devnull:
            async with Client(stdio_client(params, errlog=devnull)) as client:
                await client.list_tools()
                listed.release()
                await release.wait()

    cpu0, t0 = _children_cpu(), time.perf_counter()
    tasks = [asyncio.create_task(one()) for _ in range(n)]
    for _ in range(n):
        await listed.acquire()
    dt = time.perf_counter() - t0
    release.set()
    await asyncio.gather(*tasks)
    return dt, _children_cpu() - cpu0


def registration(http: httpx.Client, count_dir: Path, delay: float, n: int, rounds: int) -> dict[str, Any]:
    def register(servers: dict[str, Any]) -> float:
        t0 = time.perf_counter()
        res = http.post("/v1/tools/mcp", json={"mcpServers": servers}, timeout=120)
        dt = time.perf_counter() - t0
        statuses = {name: s["status"] for name, s in res.json()["servers"].items()}
        assert set(statuses.values()) == {"connected"}, statuses
        for name in servers:
            http.delete(f"/v1/tools/mcp/{name}").raise_for_status()
        return dt

    cfg = server_config(count_dir, delay)
    out: dict[str, Any] = {"alone": [], "together": [], "raw_alone": [], "raw_together": [], "cpu": [], "load": []}
    for _ in range(rounds):
        out["load"].append(_load())
        out["alone"].append(register({"slow0": cfg}))
        out["together"].append(register({f"slow{i}": cfg for i in range(n)}))
        raw_alone, cpu = asyncio.run(raw_start(cfg, 1))
        raw_together, _ = asyncio.run(raw_start(cfg, n))
        out["raw_alone"].append(raw_alone)
        out["raw_together"].append(raw_together)
        out["cpu"].append(cpu)
        print(f"  round: API {out['alone'][-1]:.2f} / {out['together'][-1]:.2f} s, raw SDK {raw_alone:.2f} / "
              f"{raw_together:.2f} s (1 / {n} servers), load {out['load'][-1]}", flush=True)
    out["load"].append(_load())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mb", type=float, default=20)
    ap.add_argument("--servers", type=int, default=6)
    ap.add_argument("--start-delay", type=float, default=2.0)
    ap.add_argument("--reg-rounds", type=int, default=5)
    ap.add_argument("--registration-only", action="store_true", help="skip the large result")
    ap.add_argument("--no-append", action="store_true", help="don't append to docs/benchmarks.md")
    opts = ap.parse_args(argv)

    load_before = _load()
    large: dict[str, Any] | None = None
    with Stack(app=True) as stack:
        app = stack.app
        assert app is not None
        # Registering MCP servers takes the registry's model permissions: the bench user gets all.
        app.manage("shell", "-c", _SUPERUSER)
        count_dir = stack.workdir / "counts"
        count_dir.mkdir()
        http = httpx.Client(base_url=app.url, headers=app.headers, timeout=120)
        reg = http.post("/v1/tools/mcp", json={"mcpServers": {"big": server_config(count_dir)}})
        if reg.status_code != 200 or reg.json()["servers"]["big"]["status"] != "connected":
            raise SystemExit(f"fixture server did not connect: {reg.status_code} {reg.text[:500]}")
        if not opts.registration_only:
            large = asyncio.run(large_rounds(http, count_dir, opts.mb, opts.rounds, app.pid))
        reg_out = registration(http, count_dir, opts.start_delay, opts.servers, opts.reg_rounds)

    n, med = opts.servers, statistics.median
    alone, together = med(reg_out["alone"]), med(reg_out["together"])
    raw_alone, raw_together = med(reg_out["raw_alone"]), med(reg_out["raw_together"])
    rows = []
    if large is not None:
        a, r = med(large["a"]), med(large["r"])
        rows += [
            [f"(a) POST /v1/tools/call, {opts.mb:g} MB result", f"{a:.3f}", f"{a / r:.2f}x of (r)", "<= 1.5x"],
            [f"(r) raw SDK call_tool, {opts.mb:g} MB result", f"{r:.3f}", "", ""],
        ]
    start = f"{opts.start_delay:g} s start each"
    rows += [
        [f"register {n} servers at once, POST /v1/tools/mcp ({start})", f"{together:.3f}",
         f"{together / alone:.2f}x of one", "<= 1.5x"],
        ["register 1 such server alone", f"{alone:.3f}", "", ""],
        [f"raw SDK: start {n} such servers at once, to tools/list", f"{raw_together:.3f}",
         f"{raw_together / raw_alone:.2f}x of one", ""],
        ["raw SDK: start 1 alone", f"{raw_alone:.3f}", "", ""],
        [f"registration over the raw SDK, {n} servers", "", f"{together / raw_together:.2f}x", ""],
    ]
    headers = ["what", "median s", "ratio", "goal"]
    cpu = med(reg_out["cpu"])
    notes = [f"{opts.reg_rounds} registration rounds; one fixture server used {cpu:.2f} s of CPU from start to stop "
             f"({os.cpu_count()} CPUs here); load average (1/5/15 min) {load_before} before, "
             f"{' | '.join(reg_out['load'])} at each registration round and after"]
    if large is not None:
        notes.append(f"worker RSS: idle {large['idle_kb'] / 1024:.0f} MB, peak {large['peak_kb'] / 1024:.0f} MB "
                     f"during the {opts.rounds} large calls, {large['after_kb'] / 1024:.0f} MB 2 s after")
    print_table(headers, rows)
    print("\n".join(notes))
    if not opts.no_append:
        append_results("MCP: a large result and parallel registration (bench/mcp_large.py)",
                       f"{machine_line()}\n\n{md_table(headers, rows)}\n\n" + "\n\n".join(n + "." for n in notes) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
