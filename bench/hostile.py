"""/healthz latency while strangers send huge bodies: p99 at rest vs under attack, same run.

Starts one Daphne worker (throwaway data dir). Measures N sequential ``GET /healthz`` at rest,
then again while an attacker keeps POSTing the 0.9 MB, 300,000-message body to
``/v1/infer`` without credentials (each answered ``401`` from the headers). Goal: p99 under
attack within 2x of p99 at rest. ``--probe /v1/models`` times an authenticated request through
Django's whole middleware stack instead (``/healthz`` runs none).

    .venv/bin/python bench/hostile.py [-n 2000] [--probe PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._harness import Stack, machine_line, ms, p50, percentile, print_table

BODY = json.dumps({"model_id": "fake-openai", "messages": [{}] * 300_000}).encode()
ATTACKERS = 1


def health_times(url: str, n: int, path: str = "/healthz", headers: dict[str, str] | None = None) -> list[float]:
    out = []
    with httpx.Client(timeout=60, headers=headers) as client:
        for _ in range(n):
            t = time.perf_counter()
            client.get(url + path).raise_for_status()
            out.append(time.perf_counter() - t)
    return out


def attack(url: str, stop: Any, attacks: Any, statuses: Any, niceness: int = 0) -> None:
    """One attacker: POST the body without credentials, again and again, until told to stop."""
    os.nice(niceness)
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            r = client.post(url + "/v1/infer", content=BODY, headers={"content-type": "application/json"})
            if r.status_code not in statuses:
                statuses.append(r.status_code)
            with attacks.get_lock():
                attacks.value += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="health checks per phase")
    parser.add_argument("--probe", default="/healthz",
                        help="the path timed instead of /healthz (sent with the staff key), e.g. /v1/models: a request "
                             "through the whole middleware stack")
    parser.add_argument("--attacker-nice", type=int, default=0,
                        help="run the attacker at this niceness: 19 leaves it only the CPU the server and the probe "
                             "do not use, as an attacker on another machine would (its own sending costs about a core)")
    args = parser.parse_args(argv)
    print(f"hostile: {machine_line()}")
    with Stack(app=True) as stack:
        assert stack.app is not None
        url = stack.app.url
        probe = partial(health_times, url, path=args.probe, headers=None if args.probe == "/healthz" else stack.app.headers)
        probe(100)  # warm-up
        load_before = os.getloadavg()[0]  # the machine's other work moves both figures: say how busy it was
        rest = probe(args.n)
        # The attacker runs in its own process: in a thread of this one it would hold the GIL
        # while encoding and sending, and the delay would be counted against the server.
        ctx = multiprocessing.get_context("spawn")
        stop, attacks = ctx.Event(), ctx.Value("i", 0)
        statuses = ctx.Manager().list()
        procs = [ctx.Process(target=attack, args=(url, stop, attacks, statuses, args.attacker_nice)) for _ in range(ATTACKERS)]
        for p in procs:
            p.start()
        try:
            time.sleep(1.0)
            started, before = time.monotonic(), attacks.value
            loaded = probe(args.n)
            rate = (attacks.value - before) / (time.monotonic() - started)
        finally:
            stop.set()
            for p in procs:
                p.join()
    rows = [["at rest", ms(p50(rest)), ms(percentile(rest, 99))], ["under attack", ms(p50(loaded)), ms(percentile(loaded, 99))]]
    print_table([args.probe, "p50 ms", "p99 ms"], rows)
    ratio = percentile(loaded, 99) / percentile(rest, 99)
    answers = sorted(statuses)
    print(f"\n{attacks.value} attack requests, {rate:.0f}/s (answers: {answers}); load average {load_before:.1f} -> "
          f"{os.getloadavg()[0]:.1f}; attacker niceness {args.attacker_nice}; "
          f"p99 under attack / at rest = {ratio:.2f} (goal <= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
