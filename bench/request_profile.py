"""Where a request's time goes inside the worker: the app called in-process, profiled.

Migrates a throwaway data dir (staff user, API key, one model per protocol pointing at the fake
model server), imports the ASGI application into this process and calls it directly, with no
HTTP server in front. For each protocol and kind it times N sequential requests, interleaved
with N requests sent directly to the fake by ``httpx.AsyncClient`` on the same event loop:

* ``infer``: ``POST /v1/infer`` (one round, stateless) vs the runtime's own upstream body POSTed
  to the fake;
* ``stream``: ``POST /v1/infer/stream`` read to its end vs the same upstream stream read to its
  end (the fake sends 40 chunks).

``added`` = p50(app) - p50(direct): what the runtime costs per request without Daphne (what
bench/overhead.py measures adds the HTTP server and the client's socket). Then the same
requests run under cProfile in every thread (the event loop and the ORM's pool) and the
functions with the most self time are printed per request (inflated by the profiler; read them
as shares, not as durations).

    .venv/bin/python bench/request_profile.py [-n 400] [--top 25] [--kinds infer,stream]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._harness import PROTOCOLS, App, Stack, machine_line, ms, p50, percentile, print_table

STREAM_CHUNKS = 40
Call = Callable[[], Coroutine[Any, Any, None]]


class AsgiCall:
    """One HTTP request handed to the ASGI application in-process; ``body`` is what it answered."""

    def __init__(self, app: Any, path: str, payload: bytes, headers: dict[str, str]) -> None:
        self.app, self.path, self.payload = app, path, payload
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.headers += [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(payload)).encode())]

    async def __call__(self) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": self.path, "raw_path": self.path.encode(), "query_string": b"",
                 "root_path": "", "headers": self.headers, "client": ("127.0.0.1", 50000),
                 "server": ("127.0.0.1", 80)}
        sent, finished = False, asyncio.get_running_loop().create_future()
        status, parts = 0, []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": self.payload, "more_body": False}
            await finished  # the client stays until the answer is complete
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                parts.append(message.get("body", b""))
                if not message.get("more_body") and not finished.done():
                    finished.set_result(None)

        await self.app(scope, receive, send)
        if status != 200:
            raise RuntimeError(f"{self.path} answered {status}: {b''.join(parts)[:300]!r}")


def direct_call(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Call:
    async def call() -> None:
        async with client.stream("POST", url, json=body) as res:
            res.raise_for_status()
            async for _ in res.aiter_raw():
                pass
    return call


async def timed(calls: dict[str, Call], n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(n):
        for name, call in calls.items():
            t = time.perf_counter()
            await call()
            out[name].append(time.perf_counter() - t)
    return out


class ThreadProfiles:
    """cProfile in this thread and in every thread started while it is on (the ORM's pool
    threads start with the first request), merged in ``stats``."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def _start_here(self, *_: Any) -> None:
        profile = cProfile.Profile()
        with self.lock:
            self.profiles.append(profile)
        profile.enable()  # replaces this hook for the thread

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._start_here)
        self._start_here()
        return self

    def __exit__(self, *exc: object) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]
        for profile in self.profiles:
            profile.disable()  # only stops the calling thread's; the others stop with their threads' last sample

    def stats(self) -> pstats.Stats:
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            profile.create_stats()
            if profile.stats:  # type: ignore[attr-defined]
                stats.add(profile)
        return stats


# Waiting, not working: a thread blocked on its queue or a lock, the loop polling for I/O.
IDLE = ("<method 'get' of '_queue.SimpleQueue' objects>", "<method 'poll' of 'select.epoll' objects>",
        "<method 'acquire' of '_thread.lock' objects>", "<method 'acquire' of '_thread.RLock' objects>")
ROOT = str(Path(__file__).resolve().parents[1]) + "/"


def top_functions(stats: pstats.Stats, requests: int, top: int, *, own: bool = False) -> list[tuple[str, float, float]]:
    """By self time; with ``own``, this project's functions by cumulative time instead."""
    rows = []
    for (file, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{_short(file)}:{line}({name})" if line else name
        if where in IDLE or (own and (not file.startswith(ROOT) or "/.venv/" in file or file.startswith(ROOT + "bench/"))):
            continue
        rows.append((where, (cumtime if own else tottime) / requests * 1e6, calls / requests))
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


def _short(file: str) -> str:
    for marker in ("site-packages/", ROOT):
        if marker in file:
            return file.split(marker, 1)[1]
    return file.rsplit("/", 2)[-1] if "/" in file else file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=400, help="timed requests per side, kind and protocol")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--top", type=int, default=25, help="functions printed per profile")
    parser.add_argument("--kinds", default="infer,stream")
    args = parser.parse_args(argv)
    kinds = args.kinds.split(",")
    print(f"request_profile: {machine_line()}")
    with Stack(app=False, chunks=STREAM_CHUNKS) as stack:
        app = App(stack.workdir).setup(stack.fake)
        os.environ.update({k: v for k, v in app._env().items() if k.startswith(("AGENTSITE_", "LOG_LEVEL"))})
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentsite.settings")
        from agentsite.asgi import application  # after the data dir is in the environment

        asyncio.run(_bench(application, app, stack, kinds, args))
    return 0


async def _bench(application: Any, app: App, stack: Stack, kinds: list[str], args: argparse.Namespace) -> None:
    rows, profiled = [], {}
    async with httpx.AsyncClient(timeout=30) as client:
        for protocol in PROTOCOLS:
            for kind in kinds:
                stream = kind == "stream"
                body = {"model_id": f"fake-{protocol}", "text": "hi"}
                path = "/v1/infer/stream" if stream else "/v1/infer"
                ours = AsgiCall(application, path, json.dumps(body).encode(), app.headers)
                await ours()
                upstream = await _last_upstream(client, stack, protocol, stream)
                calls = {"direct": direct_call(client, upstream[0], upstream[1]), "app": ours}
                await timed(calls, args.warmup)
                await _reset(client, stack)  # the fake logs every request: keep its log short
                times = await timed(calls, args.n)
                await _reset(client, stack)
                d, a = times["direct"], times["app"]
                rows.append([protocol, kind, f"{ms(p50(d)):.2f}", f"{ms(p50(a)):.2f}", f"{ms(p50(a) - p50(d)):.2f}",
                             f"{ms(percentile(a, 95) - percentile(d, 95)):.2f}"])
                with ThreadProfiles() as profiles:
                    for _ in range(args.n):
                        await ours()
                stats = profiles.stats()
                profiled[(protocol, kind)] = (top_functions(stats, args.n, args.top),
                                              top_functions(stats, args.n, args.top, own=True))
    print("\nIn-process (no HTTP server in front); added = app - direct:")
    print_table(["protocol", "kind", "direct p50 ms", "app p50 ms", "added p50 ms", "added p95 ms"], rows)
    for (protocol, kind), (top, own) in profiled.items():
        print(f"\n{protocol} {kind}: top {len(top)} functions by self time, µs per request under cProfile "
              "(all threads; waits for I/O and for work left out)")
        print_table(["function", "µs / request", "calls / request"], [[w, f"{us:.1f}", f"{c:.1f}"] for w, us, c in top])
        print(f"\n{protocol} {kind}: this project's functions by cumulative time, µs per request under cProfile")
        print_table(["function", "µs / request", "calls / request"], [[w, f"{us:.1f}", f"{c:.1f}"] for w, us, c in own])


async def _last_upstream(client: httpx.AsyncClient, stack: Stack, protocol: str, stream: bool) -> tuple[str, dict[str, Any]]:
    """The URL and body the runtime just sent the fake (from the fake's request log, then emptied)."""
    path = "/v1/chat/completions" if protocol == "openai" else "/api/chat"
    requests = (await client.get(stack.fake.url + "/_fake/requests")).json()["requests"]
    body = [r["json"] for r in requests if r["path"] == path][-1]
    assert bool(body.get("stream", True)) == stream, body
    await _reset(client, stack)
    return stack.fake.url + path, body


async def _reset(client: httpx.AsyncClient, stack: Stack) -> None:
    (await client.post(stack.fake.url + "/_fake/reset")).raise_for_status()


if __name__ == "__main__":
    sys.exit(main())
