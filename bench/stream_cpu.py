"""Server CPU per streamed chunk: what one more delta costs the worker, all of it.

Starts the fake model server and one Daphne worker. Per protocol, sends N sequential
``POST /v1/infer/stream`` whose answers have SHORT content chunks, then N whose answers have
LONG chunks (8 characters each), alternating the two kinds over several blocks, and reads the
worker's CPU time (user + system, every thread, from /proc) around each block. CPU per chunk =
(CPU of a long stream - CPU of a short one) / (LONG - SHORT): the fixed per-request cost
cancels out, and what is left is everything a chunk costs between the upstream socket and the
client's (engine parsing, hand-over, secret scrubbing, SSE framing, Daphne). The fastest block
counts (other load only ever adds). Target: <= 0.1 ms per chunk.

    .venv/bin/python bench/stream_cpu.py [-n 100] [--blocks 3] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._harness import PROTOCOLS, Stack, append_results, machine_line, md_table, print_table

TARGET_MS = 0.1
SHORT, LONG = 20, 220
CHUNK = "abcdefgh"


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def block(client: httpx.Client, stack: Stack, protocol: str, chunks: int, n: int) -> float:
    """Worker CPU seconds per stream of ``chunks`` content chunks (n streams)."""
    app = stack.app
    assert app is not None
    reply = {"content": CHUNK * chunks, "chunk_size": len(CHUNK)}
    client.post(stack.fake.url + "/_fake/reset").raise_for_status()
    client.post(stack.fake.url + "/_fake/script", json={"model": None, "replies": [reply] * n}).raise_for_status()
    body = {"model_id": f"fake-{protocol}", "text": "Go."}
    before = cpu_s(app.pid)
    for _ in range(n):
        with client.stream("POST", app.url + "/v1/infer/stream", json=body, headers=app.headers) as r:
            deltas = sum(1 for line in r.iter_lines() if line == "event: delta")
        if deltas < chunks:
            raise RuntimeError(f"{protocol}: {deltas} deltas for {chunks} chunks")
    return (cpu_s(app.pid) - before) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100, help="streams per block")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    print(f"stream_cpu: {machine_line()}")
    rows = []
    with Stack(chunks=1) as stack, httpx.Client(timeout=60) as client:
        for protocol in PROTOCOLS:
            block(client, stack, protocol, SHORT, 20)  # warm-up
            short, long = [], []
            for _ in range(args.blocks):
                short.append(block(client, stack, protocol, SHORT, args.n))
                long.append(block(client, stack, protocol, LONG, args.n))
            per_chunk = (min(long) - min(short)) / (LONG - SHORT) * 1000
            rows.append([protocol, round(min(short) * 1000, 2), round(min(long) * 1000, 2), round(per_chunk, 3),
                         "met" if per_chunk <= TARGET_MS else "MISSED"])
    headers = ["protocol", f"CPU per {SHORT}-chunk stream ms", f"CPU per {LONG}-chunk stream ms", "CPU per chunk ms",
               f"target <= {TARGET_MS}"]
    print_table(headers, rows)
    if not args.no_append:
        append_results("Server CPU per streamed chunk (bench/stream_cpu.py)", (
            f"`bench/stream_cpu.py -n {args.n} --blocks {args.blocks}`: the worker's CPU time (all threads, user + "
            f"system) per /v1/infer/stream of {SHORT} and of {LONG} content chunks of {len(CHUNK)} characters, the "
            f"fastest of {args.blocks} alternating blocks; per chunk = the difference / {LONG - SHORT}.\n\n"
            + md_table(headers, rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
