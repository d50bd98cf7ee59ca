"""Run every benchmark, one after the other; each appends its section to docs/benchmarks.md.

    .venv/bin/python bench/run_all.py [--no-append]

Each bench is also runnable alone: bench/overhead.py, bench/stream_cpu.py, bench/tool_loop.py,
bench/concurrency.py, bench/mcp_call.py (and, not run here: chunk_path, hostile, mcp_large,
governance, openai_endpoint, chat_browser, scaleout_soak, compare, request_profile, worker_profile).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import concurrency, mcp_call, overhead, stream_cpu, tool_loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-append", action="store_true", help="print only; don't touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    extra = ["--no-append"] if args.no_append else []
    failed = []
    benches = (("overhead", overhead), ("stream_cpu", stream_cpu), ("tool_loop", tool_loop), ("concurrency", concurrency),
               ("mcp_call", mcp_call))
    for name, mod in benches:
        print(f"\n==== {name} ====", flush=True)
        t0 = time.monotonic()
        try:
            rc = mod.main(extra)
        except Exception as exc:  # noqa: BLE001 - one failing bench must not hide the others' figures
            print(f"{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            rc = 1
        print(f"==== {name}: {time.monotonic() - t0:.0f} s ====", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
