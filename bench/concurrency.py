"""1,000 concurrent /v1/infer/stream requests against ONE Daphne worker.

The fake model server streams ~50 content chunks per answer, 0.01 s apart. In one run:

1. **fake alone**: the same 1,000 streams sent directly to the fake server (its own ceiling on
   this machine, for comparison);
2. **through the app**: 1,000 concurrent ``POST /v1/infer/stream`` to one worker process.

Reports errors (target 0; a stream that fails, lacks its ``done``/``[DONE]`` or misses chunks
counts), wall time, chunks relayed per second, time to first chunk, and the worker's peak RSS
(target <= 600 MB; VmRSS sampled every 20 ms from /proc/<pid>/status, and VmHWM at the end).
RLIMIT_NOFILE is raised for this process and its children.

    .venv/bin/python bench/concurrency.py [-c 1000] [--chunks 50] [--delay 0.01] [--protocol openai]
                                          [--pools 1] [--hog 0] [--no-append]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._harness import (
    FAKE_MODEL,
    RssSampler,
    Stack,
    append_results,
    machine_line,
    md_table,
    ms,
    p50,
    p95,
    print_table,
    proc_status,
    raise_nofile,
)

RSS_TARGET_MB = 600
CHUNK_TEXT = "ok "  # each of the fake's default content chunks (tests/fakes/fake_llm.py)


class ErrorEvent(Exception):
    """The app's stream carried an ``error`` event (e.g. model_timeout)."""


@dataclass
class Outcome:
    ok: int = 0
    errors: int = 0
    chunks: int = 0
    ttft: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


def _direct_request(fake_url: str, protocol: str) -> tuple[str, dict]:
    messages = [{"role": "user", "content": "Say ok fifty times."}]
    if protocol == "openai":
        return fake_url + "/v1/chat/completions", {"model": FAKE_MODEL, "messages": messages, "stream": True}
    return fake_url + "/api/chat", {"model": FAKE_MODEL, "messages": messages, "stream": True}


def _is_direct_chunk(protocol: str, line: str) -> tuple[int, bool]:
    """(characters of content, is the end marker) for a line of the fake's own stream."""
    if protocol == "openai":
        if line == "data: [DONE]":
            return 0, True
        if not line.startswith("data: "):
            return 0, False
        choices = json.loads(line[6:]).get("choices") or []
        return len(choices and (choices[0].get("delta") or {}).get("content") or ""), False
    if not line:
        return 0, False
    obj = json.loads(line)
    return len((obj.get("message") or {}).get("content") or ""), bool(obj.get("done"))


async def one_stream(
    client: httpx.AsyncClient, url: str, body: dict, headers: dict, parse, expect: int, out: Outcome, start: asyncio.Event
) -> None:
    await start.wait()
    t0 = time.perf_counter()
    chars, finished, first = 0, False, None
    try:
        async with client.stream("POST", url, json=body, headers=headers) as r:
            if r.status_code != 200:
                await r.aread()
                out.error(f"HTTP {r.status_code}")
                return
            async for line in r.aiter_lines():
                got, is_end = parse(line)
                if got:
                    chars += got
                    if first is None:
                        first = time.perf_counter() - t0
                finished = finished or is_end
    except httpx.HTTPError as exc:
        out.error(type(exc).__name__)
        return
    except ErrorEvent as exc:
        out.error(f"error event {exc}")
        return
    # The answer is "ok " x expect; the relay may join pieces, so whole text is what counts.
    out.chunks += chars // len(CHUNK_TEXT)
    if not finished:
        out.error("no end of stream")
    elif chars < expect * len(CHUNK_TEXT):
        out.error(f"missing content ({chars}/{expect * len(CHUNK_TEXT)} characters)")
    else:
        out.ok += 1
        out.ttft.append(first or 0.0)
        out.durations.append(time.perf_counter() - t0)


def app_parser():
    state = {"event": ""}

    def parse(line: str) -> tuple[int, bool]:
        if line.startswith("event: "):
            state["event"] = line[7:]
            return 0, False
        if line.startswith("data: "):
            if state["event"] == "error":
                try:
                    code = json.loads(line[6:])["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = line[6:100]
                raise ErrorEvent(code)
            if state["event"] == "delta":
                return len(json.loads(line[6:]).get("content") or ""), False
            return 0, state["event"] == "done"
        return 0, False

    return parse


async def run_streams(
    n: int, url: str, body: dict, headers: dict, parser_factory, expect: int, pools: int = 1
) -> Outcome:
    """``n`` streams at once, spread round-robin over ``pools`` clients (connection pools)."""
    out = Outcome()
    per_pool = -(-n // pools) + 10
    limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
    timeout = httpx.Timeout(connect=60.0, read=120.0, write=60.0, pool=120.0)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=timeout)) for _ in range(pools)]
        start = asyncio.Event()
        tasks = [
            asyncio.create_task(one_stream(clients[i % pools], url, body, headers, parser_factory(), expect, out, start))
            for i in range(n)
        ]
        await asyncio.sleep(0)
        t0 = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        out.wall = time.perf_counter() - t0
    return out


def row(label: str, o: Outcome, n: int, rss: str = "") -> list:
    return [
        label, n, o.ok, o.errors, f"{o.wall:.2f}", f"{o.chunks / o.wall:,.0f}" if o.wall else "-",
        f"{ms(p50(o.ttft)):.0f}" if o.ttft else "-", f"{ms(p95(o.ttft)):.0f}" if o.ttft else "-",
        f"{p50(o.durations):.2f}" if o.durations else "-", f"{max(o.durations):.2f}" if o.durations else "-", rss,
    ]  # fmt: skip


@contextlib.contextmanager
def cpu_hogs(n: int) -> Iterator[None]:
    """``n`` processes that keep a core busy: the machine is loaded by something else."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--concurrency", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=50, help="content chunks per answer")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between chunks")
    parser.add_argument("--protocol", choices=("openai", "ollama"), default="openai")
    parser.add_argument("--pools", type=int, default=1, help="spread the streams over this many client connection pools")
    parser.add_argument("--hog", type=int, default=0, help="processes spinning on the CPU during both runs")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    n, protocol = args.concurrency, args.protocol
    soft, hard = raise_nofile()
    print(f"concurrency: {machine_line()}; RLIMIT_NOFILE {soft}/{hard}")

    with Stack(app=True, chunks=args.chunks, delay=args.delay) as stack, cpu_hogs(args.hog):
        fake, app = stack.fake, stack.app
        assert app is not None
        url, body = _direct_request(fake.url, protocol)
        # warm both up (imports, pooled upstream connections' first use)
        asyncio.run(run_streams(20, url, body, {}, lambda: (lambda line: _is_direct_chunk(protocol, line)), args.chunks))
        app_body = {"model_id": f"fake-{protocol}", "text": "Say ok fifty times."}
        asyncio.run(run_streams(20, app.url + "/v1/infer/stream", app_body, app.headers, app_parser, args.chunks))
        httpx.post(fake.url + "/_fake/reset")

        print(f"  fake alone: {n} concurrent streams ...", flush=True)
        direct = asyncio.run(
            run_streams(n, url, body, {}, lambda: (lambda line: _is_direct_chunk(protocol, line)), args.chunks, args.pools)
        )
        httpx.post(fake.url + "/_fake/reset")

        before = proc_status(app.pid)
        print(
            f"  through the app: {n} concurrent /v1/infer/stream ... (worker RSS before: {before.get('VmRSS', 0) / 1024:.0f} MB)",
            flush=True,
        )
        with RssSampler(app.pid) as sampler:
            via = asyncio.run(
                run_streams(n, app.url + "/v1/infer/stream", app_body, app.headers, app_parser, args.chunks, args.pools)
            )
        after = proc_status(app.pid)
        upstream = httpx.get(fake.url + "/_fake/requests").json()
        upstream_n = len(upstream["requests"])

    peak_mb = max(sampler.peak_kb, after.get("VmHWM", 0)) / 1024
    headers = ["run", "streams", "ok", "errors", "wall s", "chunks/s", "TTFT p50 ms", "TTFT p95 ms",
               "stream p50 s", "stream max s", "worker peak RSS"]  # fmt: skip
    rows = [
        row(f"fake alone ({protocol})", direct, n),
        row(f"via /v1/infer/stream ({protocol})", via, n, f"{peak_mb:.0f} MB"),
    ]
    print()
    print_table(headers, rows)
    notes = [
        f"errors through the app: {via.errors} (target 0: {'met' if via.errors == 0 else 'MISSED'})"
        + (f"; kinds: {via.error_kinds}" if via.error_kinds else ""),
        f"fake alone errors: {direct.errors}" + (f"; kinds: {direct.error_kinds}" if direct.error_kinds else ""),
        f"worker peak RSS {peak_mb:.0f} MB (VmHWM {after.get('VmHWM', 0) / 1024:.0f} MB, sampled max "
        f"{sampler.peak_kb / 1024:.0f} MB, {before.get('VmRSS', 0) / 1024:.0f} MB before the burst, "
        f"{after.get('VmRSS', 0) / 1024:.0f} MB after; peak threads {sampler.peak_threads}); target <= {RSS_TARGET_MB} MB: "
        f"{'met' if peak_mb <= RSS_TARGET_MB else 'MISSED'}",
        f"upstream requests the fake saw during the app run: {upstream_n}",
        f"relay throughput vs the fake's own ceiling: {via.chunks / via.wall:,.0f} vs {direct.chunks / direct.wall:,.0f} chunks/s"
        if via.wall and direct.wall else "",
    ]
    notes = [x for x in notes if x]
    print("\n" + "\n".join(notes))
    if not args.no_append:
        body_md = (
            f"`bench/concurrency.py`: {n} concurrent streams opened at once ({args.pools} httpx.AsyncClient "
            f"connection pool(s)), {args.chunks} content chunks per answer {args.delay} s apart, "
            f"protocol {protocol}; one Daphne worker process; client, fake and worker on the same machine"
            + (f", with {args.hog} CPU hog process(es) spinning beside them" if args.hog else "") + ". "
            f"\"fake alone\" is the same {n} streams sent directly to the fake server.\n\n"
            + md_table(headers, rows)
            + "\n\n"
            + "\n".join(f"- {x}" for x in notes)
        )
        append_results(f"Concurrency: {n} streams, one worker", body_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
