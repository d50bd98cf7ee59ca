"""Where a live worker's CPU goes, Daphne and all: py-spy on one worker under sequential load.

``bench/request_profile.py`` calls the app in-process under cProfile; this one samples a real
worker (``manage.py serve``) from outside while one client sends requests one after the other,
so the HTTP server, the GIL and the collector are in the picture (this is how the cookie store
and the full collections of session 27 were found). Samples only while the worker holds the GIL
(``py-spy record --gil``). Prints the worker's CPU per request (from ``/proc``), the share of each
library by self time, and the functions with the most self time, in µs per request (a stream
is one request of 20 chunks; the sampler slows the worker down, so read these as shares).

Needs py-spy (``.venv/bin/pip install -e '.[bench]'``) and the right to trace a child process
(root, or ``kernel.yama.ptrace_scope`` 0).

    .venv/bin/python bench/worker_profile.py [--kind infer|stream|tool] [--protocol openai] [--seconds 20] [--top 25]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._harness import PY, Stack, machine_line, print_table
from bench.mcp_call import TIME_ARGS

CHUNKS = 20
RATE_HZ = 250
# The first folder of a sampled frame's file names who spent the time.
LIBRARIES = {
    "twisted": "Twisted + Daphne", "daphne": "Twisted + Daphne", "zope": "Twisted + Daphne",
    "aiohttp": "aiohttp", "yarl": "aiohttp", "multidict": "aiohttp", "propcache": "aiohttp",
    "asyncio": "asyncio", "selectors.py": "asyncio",
    "httpx": "httpx", "httpcore": "httpx",
    "django": "Django + DRF + asgiref", "rest_framework": "Django + DRF + asgiref", "asgiref": "Django + DRF + asgiref",
    "mcp": "mcp SDK", "anyio": "mcp SDK", "pydantic": "mcp SDK", "pydantic_core": "mcp SDK", "jsonschema": "jsonschema",
}
OURS = {"agentsite", "core", "accounts", "registry", "templates_app", "sessions", "usage", "agents", "inference", "web"}


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(PY).parent)) or shutil.which("py-spy")
    if not found:
        sys.exit("py-spy is not installed: .venv/bin/pip install -e '.[bench]'")
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def library(frame: str) -> str:
    m = re.search(r"\((.*?):\d+\)$", frame)
    top = (m.group(1) if m else frame).split("/")[0]
    return "ours" if top in OURS else LIBRARIES.get(top, "other (stdlib, C)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("infer", "stream", "tool"), default="infer")
    parser.add_argument("--protocol", choices=("openai", "ollama"), default="openai")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    spy = py_spy()
    print(f"worker_profile: {machine_line()}\n{args.kind} ({args.protocol}), sampled for {args.seconds} s ...", flush=True)

    with Stack(chunks=CHUNKS) as stack, tempfile.TemporaryDirectory() as tmp:
        assert stack.app is not None
        app = stack.app
        client = httpx.Client(base_url=app.url, headers=app.headers, timeout=30)
        path, body = "/v1/infer", {"model_id": f"fake-{args.protocol}", "text": "Say ok."}
        if args.kind == "stream":
            path = "/v1/infer/stream"
        elif args.kind == "tool":
            client.post("/v1/tools/mcp", json={"mcpServers": {"time": {"command": PY, "args": TIME_ARGS}}}).raise_for_status()
            path, body = "/v1/tools/call", {"tool_id": "time.get_current_time", "arguments": {"timezone": "UTC"}}

        def one() -> None:
            with client.stream("POST", path, json=body) as res:
                res.raise_for_status()
                res.read()

        for _ in range(100):
            one()
        out = Path(tmp) / "samples.txt"
        sampler = subprocess.Popen(
            [spy, "record", "--gil", "-r", str(RATE_HZ), "-f", "raw", "-o", str(out), "-d", str(args.seconds),
             "-p", str(app.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(1)  # attached
        n, started, cpu_before = 0, time.monotonic(), cpu_seconds(app.pid)
        while time.monotonic() - started < args.seconds - 2:
            one()
            n += 1
        cpu = cpu_seconds(app.pid) - cpu_before
        _, err = sampler.communicate()
        if not out.exists():
            sys.exit(f"py-spy failed: {err.strip()}")
        self_time: Counter[str] = Counter()
        for line in out.read_text().splitlines():
            stack_, _, count = line.rpartition(" ")
            self_time[stack_.rsplit(";", 1)[-1]] += int(count)

    total = sum(self_time.values())
    us = 1e6 / RATE_HZ / n  # one sample, in µs per request
    print(f"\n{n} requests; worker CPU {1000 * cpu / n:.2f} ms per request (sampler attached); "
          f"{total} samples with the GIL held\n")
    shares: Counter[str] = Counter()
    for frame, count in self_time.items():
        shares[library(frame)] += count
    print_table(["who", "share of self time", "µs per request"],
                [[who, f"{100 * c / total:.1f} %", f"{c * us:.1f}"] for who, c in shares.most_common()])
    print()
    print_table(["function (file:line)", "share", "µs per request"],
                [[frame, f"{100 * c / total:.1f} %", f"{c * us:.1f}"] for frame, c in self_time.most_common(args.top)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
