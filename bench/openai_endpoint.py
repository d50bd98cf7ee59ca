"""What the OpenAI-compatible face costs: the same run through /openai/v1 vs /v1/infer.

Starts the fake model server (answering instantly) and one Daphne worker, then, for each
protocol of the upstream model (openai, ollama), sends N sequential requests of each kind,
interleaved so drift hits both sides alike:

* **completion**: ``POST /openai/v1/chat/completions`` (one round, no tools, stateless) vs
  ``POST /v1/infer`` with the same model and message;
* **stream**: the same with ``stream: true`` vs ``POST /v1/infer/stream``, each read to the end.

Added = p50(/openai/v1) - p50(/v1/infer), likewise for p95. Target: a completion through
/openai/v1 adds <= 0.5 ms p50 over the same run through /v1/infer.

    .venv/bin/python bench/openai_endpoint.py [-n 300] [--warmup 50] [--no-append]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._harness import PROTOCOLS, Stack, append_results, machine_line, md_table, ms, p50, p95, print_table
from bench.overhead import CHUNKS, TEXT, client, timed_post

TARGET_MS = 0.5


def timed_read(c: httpx.Client, url: str, body: dict, headers: dict[str, str]) -> float:
    t0 = time.perf_counter()
    with c.stream("POST", url, json=body, headers=headers) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {r.status_code} {r.read()[:300]!r}")
        for _ in r.iter_bytes():
            pass
    return time.perf_counter() - t0


def measure(stack: Stack, protocol: str, n: int, warmup: int) -> dict[str, list[float]]:
    app = stack.app
    assert app is not None
    model = f"fake-{protocol}"
    infer = {"model_id": model, "text": TEXT}
    chat = {"model": model, "messages": [{"role": "user", "content": TEXT}]}
    out: dict[str, list[float]] = {k: [] for k in ("infer", "openai", "infer_stream", "openai_stream")}
    with client() as a, client() as b:
        for i in range(warmup + n):
            samples = (
                timed_post(a, app.url + "/v1/infer", infer, app.headers),
                timed_post(b, app.url + "/openai/v1/chat/completions", chat, app.headers),
                timed_read(a, app.url + "/v1/infer/stream", infer, app.headers),
                timed_read(b, app.url + "/openai/v1/chat/completions", {**chat, "stream": True}, app.headers),
            )
            if i >= warmup:
                for key, value in zip(out, samples, strict=True):
                    out[key].append(value)
            if i % 100 == 99:  # the fake keeps a log of every request; keep it small
                a.post(stack.fake.url + "/_fake/reset")
    return out


def summarize(results: dict[str, dict[str, list[float]]]) -> tuple[list[str], list[list[Any]], float]:
    headers = ["protocol", "measure", "/v1 p50", "/v1 p95", "/openai/v1 p50", "/openai/v1 p95", "added p50", "added p95"]
    rows: list[list[Any]] = []
    worst = float("-inf")
    for protocol, r in results.items():
        for base, label in (("infer", "completion"), ("infer_stream", "whole stream")):
            v1, oa = r[base], r[base.replace("infer", "openai")]
            row: list[Any] = [protocol, label, ms(p50(v1)), ms(p95(v1)), ms(p50(oa)), ms(p95(oa)), ms(p50(oa) - p50(v1)),
                   ms(p95(oa) - p95(v1))]
            rows.append(row)
            if base == "infer":
                worst = max(worst, row[6])
    return headers, rows, worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=300, help="measured requests per kind and protocol")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--no-append", action="store_true", help="don't append to docs/benchmarks.md")
    args = parser.parse_args(argv)

    print(f"openai_endpoint: {machine_line()}")
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
    headers, rows, worst = summarize(results)
    print()
    print_table(headers, rows)
    verdict = (f"completion through /openai/v1: worst added p50 {worst:.2f} ms "
               f"({'meets' if worst <= TARGET_MS else 'MISSES'} the {TARGET_MS} ms target)")
    print(f"\n{verdict}\n(ran {time.monotonic() - t0:.0f} s)")
    if not args.no_append:
        body = (
            f"`bench/openai_endpoint.py`: {args.n} measured sequential requests per kind and protocol (after "
            f"{args.warmup} warm-up), one keep-alive httpx client per endpoint, /v1 and /openai/v1 requests "
            f"interleaved, the same model and message. The fake answers instantly with {CHUNKS} content chunks. "
            f"Times in ms; added = /openai/v1 - /v1. Target: added p50 <= {TARGET_MS} ms for a completion.\n\n"
            + md_table(headers, rows) + f"\n\n- {verdict}"
        )
        append_results("OpenAI-compatible endpoint vs /v1/infer", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
