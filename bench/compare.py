"""Before/after: the per-request overhead of this checkout against another revision, same run.

Checks out ``--base`` (a commit, tag or branch) into a temporary git worktree, starts one Daphne
worker from each checkout against one fake model server, and measures both with
``bench/overhead.py``'s method (direct-to-fake vs through ``/v1``), alternating between the two
in blocks so that drift of the machine hits both alike. Prints the added p50 of each and the
ratio after/before (below 1.0 = this checkout adds less).

    .venv/bin/python bench/compare.py --base 7c3dd11 [-n 200] [--blocks 3]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import overhead
from bench._harness import PROTOCOLS, ROOT, Stack, machine_line, ms, p50, print_table


def worktree(rev: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="agentsite-base-"))
    shutil.rmtree(path)
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), rev], cwd=ROOT, check=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("-n", type=int, default=200, help="measured requests per kind, protocol, block and side")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--blocks", type=int, default=3, help="alternating blocks per side")
    args = parser.parse_args(argv)
    print(f"compare: {machine_line()}\nbase {args.base} vs this checkout")

    base_root = worktree(args.base)
    samples: dict[str, dict[str, dict[str, list[float]]]] = {"base": {}, "head": {}}
    try:
        with Stack(app=True, chunks=overhead.CHUNKS, root=base_root) as base, Stack(app=True, chunks=overhead.CHUNKS) as head:
            gc.disable()
            try:
                for block in range(args.blocks):
                    for side, stack in (("base", base), ("head", head)) if block % 2 == 0 else (("head", head), ("base", base)):
                        for protocol in PROTOCOLS:
                            print(f"  block {block + 1}/{args.blocks}: {side} {protocol} ...", flush=True)
                            got = overhead.measure(stack, protocol, args.n, args.warmup)
                            into = samples[side].setdefault(protocol, {})
                            for key, values in got.items():
                                into.setdefault(key, []).extend(values)
                            gc.collect()
            finally:
                gc.enable()
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_root)], cwd=ROOT, check=False)

    rows = []
    for protocol in PROTOCOLS:
        for kind, label in (
            ("round", "model round (/v1/infer)"),
            ("ttft", "TTFT (/v1/infer/stream)"),
            ("stream", "whole stream"),
        ):
            added = {side: p50(samples[side][protocol][f"{kind}_app"]) - p50(samples[side][protocol][f"{kind}_direct"])
                     for side in ("base", "head")}
            ratio = added["head"] / added["base"] if added["base"] > 0 else float("nan")
            rows.append([protocol, label, ms(added["base"]), ms(added["head"]), f"{ratio:.2f}"])
    print()
    print_table(["protocol", "measure", "added p50 base (ms)", "added p50 head (ms)", "ratio head/base"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
