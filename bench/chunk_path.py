"""Engine CPU per streamed chunk: a recorded upstream stream parsed in-process, no sockets.

For each protocol, one recorded answer of N chunks (a quarter reasoning deltas, then content
deltas, then one tool call whose arguments arrive in fragments on OpenAI and whole on Ollama,
then the finish and the usage) is fed, one network read per chunk, as the bytes httpx would
hand the adapter. Two stages are timed, each as the wall time of the whole stream / N:

* **adapter**: ``ProtocolAdapter.stream()`` to its last event: line splitting, JSON, delta
  extraction, the adapter's events;
* **run**: ``Runtime.astream(..., ping_s=15)`` to its last event (one round, tools not run):
  the adapter plus the run loop, the hand-over to the consumer and the ``StreamEvent``s a
  server view receives.

Each read is one event-loop turn (``asyncio.sleep(0)``), as a socket read would be, so the
run's producer and consumer alternate per chunk as they do when serving. The request itself
(building the body) is left out by replacing ``open_stream``; HTTP is not the engine's cost.

``--base REV`` measures REV's engine with this same bench in the same run: both sides run in
their own processes, alternating. Every figure is the fastest pass: on a shared machine
the least disturbed pass is the closest to the code's own cost.
``--profile`` prints the functions with the most self time per chunk (run stage, cProfile).
Last, the cost of the run's hand-over alone (this checkout): events put by a producer task and
read through the run's outbox, against the same events from a generator read in place.

    .venv/bin/python bench/chunk_path.py [-n 2000] [--repeat 9] [--base REV] [--blocks 3] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._harness import PROTOCOLS, ROOT, machine_line, print_table
from bench.compare import worktree

TARGET_US = 100.0  # issue 19: <= 0.1 ms of server CPU per streamed chunk
STAGES = ("adapter", "run")
WORDS = ("The", " answer", " is", " forty", "-two", ",", " as", " computed", " by", " Deep", " Thought", " — ", "naïve",
         " 🌍", ".\n")


def _tokens(n: int) -> Iterator[str]:
    """Words in a seeded random order: text that repeats itself would trip the run's loop guard."""
    rng = random.Random(19)
    for _ in range(n):
        yield rng.choice(WORDS)


def openai_stream(n: int) -> list[bytes]:
    """vLLM-shaped chunks, one ``data:`` frame per read."""
    head = {"id": "chatcmpl-8f3a1c2b9d", "object": "chat.completion.chunk", "created": 1765112400, "model": "Qwen/Qwen3-8B"}

    def frame(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        chunk = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"

    arguments = json.dumps({"city": "Zürich", "units": "metric", "days": 3})
    fragments = [arguments[i : i + 6] for i in range(0, len(arguments), 6)]
    body = n - 3 - len(fragments)  # the opener, the fragments, the finish and the usage chunk
    thinking = body // 4
    frames = [frame({"role": "assistant", "content": ""})]
    frames += [frame({"reasoning_content": t}) for t in _tokens(thinking)]
    frames += [frame({"content": t}) for t in _tokens(body - thinking)]
    call = {"index": 0, "id": "call_9f2", "type": "function", "function": {"name": "weather", "arguments": ""}}
    frames[-1:] = [frames[-1], frame({"tool_calls": [call]})]
    frames += [frame({"tool_calls": [{"index": 0, "function": {"arguments": f}}]}) for f in fragments[:-1]]
    frames.append(frame({"tool_calls": [{"index": 0, "function": {"arguments": fragments[-1]}}]}, "tool_calls"))
    usage = {"prompt_tokens": 812, "completion_tokens": n, "total_tokens": 812 + n}
    frames.append(b"data: " + json.dumps({**head, "choices": [], "usage": usage}).encode() + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return frames


def ollama_stream(n: int) -> list[bytes]:
    """Ollama ``/api/chat`` lines, one per read."""

    def line(message: dict[str, Any], **extra: Any) -> bytes:
        obj = {"model": "qwen3:8b", "created_at": "2026-12-07T14:00:00.123456789Z",
               "message": {"role": "assistant", "content": "", **message}, "done": False, **extra}
        return json.dumps(obj, ensure_ascii=False).encode() + b"\n"

    body = n - 2  # the tool call line and the done line
    thinking = body // 4
    lines = [line({"thinking": t}) for t in _tokens(thinking)]
    lines += [line({"content": t}) for t in _tokens(body - thinking)]
    call = {"id": "call_9f2", "function": {"index": 0, "name": "weather", "arguments": {"city": "Zürich", "days": 3}}}
    lines.append(line({"tool_calls": [call]}))
    lines.append(line({}, done=True, done_reason="stop", prompt_eval_count=812, eval_count=n,
                      total_duration=182242375, eval_duration=115959084) .replace(b'"done": false, ', b""))
    return lines


RECORDINGS: dict[str, Callable[[int], list[bytes]]] = {"openai": openai_stream, "ollama": ollama_stream}
CONTENT_TYPES = {"openai": "text/event-stream", "ollama": "application/x-ndjson"}


class _Recorded:
    """What the adapters read of an ``httpx.Response``: the headers and ``aiter_bytes()``."""

    def __init__(self, reads: list[bytes], content_type: str) -> None:
        self.headers = {"content-type": content_type}
        self._reads = reads

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for data in self._reads:
            await asyncio.sleep(0)  # one event-loop turn per read, like a socket
            yield data


def _replay(reads: list[bytes], content_type: str) -> Callable[..., Any]:
    @asynccontextmanager
    async def open_stream(self: Any, path: str, body: Any) -> AsyncIterator[_Recorded]:
        yield _Recorded(reads, content_type)

    return open_stream


async def _timed(stage: str, protocol: str, reads: list[bytes], profile: cProfile.Profile | None = None) -> float:
    from inference.engine import InferenceRequest, Message, ModelConfig, ModelRegistry, Runtime, get_adapter
    from inference.engine.protocols.base import ProtocolAdapter

    model = ModelConfig("m", protocol, "http://127.0.0.1:9", "m")
    events: AsyncIterator[Any]
    with patch.object(ProtocolAdapter, "open_stream", _replay(reads, CONTENT_TYPES[protocol])):
        if stage == "adapter":
            events = get_adapter(model).stream([Message(role="user", content="hi")], [])
        else:
            events = Runtime(ModelRegistry([model])).astream(InferenceRequest.of("m", "hi", max_tool_rounds=0), ping_s=15.0)
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        async for _ in events:
            pass
        if profile is not None:
            profile.disable()
        return time.perf_counter() - started


def measure(n: int, repeat: int) -> dict[str, dict[str, float]]:
    """Best-of-``repeat`` µs per chunk for each protocol and stage (the least disturbed pass)."""
    out: dict[str, dict[str, float]] = {}
    for protocol in PROTOCOLS:
        reads = RECORDINGS[protocol](n)
        for stage in STAGES:
            asyncio.run(_timed(stage, protocol, reads))  # warm-up
            gc.collect()
            gc.disable()
            try:
                runs = [asyncio.run(_timed(stage, protocol, reads)) for _ in range(repeat)]
            finally:
                gc.enable()
            out.setdefault(protocol, {})[stage] = min(runs) / len(reads) * 1e6
    return out


async def _handed_over(n: int, hop: bool) -> float:
    from inference.engine.outbox import Outbox

    async def produce() -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)  # one loop turn per event, as per read
            yield i

    started = time.perf_counter()
    if not hop:
        async for _ in produce():
            pass
        return time.perf_counter() - started
    box: Outbox[int | None] = Outbox()

    async def producer() -> None:
        async for i in produce():
            box.put_nowait(i)
        box.put_nowait(None)

    task = asyncio.create_task(producer())
    while await box.get(15.0) is not None:
        pass
    await task
    return time.perf_counter() - started


def handover_cost(n: int, repeat: int) -> float:
    """µs per event that handing events from the run's task to its consumer adds (Outbox and
    a producer task against the same events from a generator in the consumer's own task)."""
    hop = min(asyncio.run(_handed_over(n, True)) for _ in range(repeat))
    inline = min(asyncio.run(_handed_over(n, False)) for _ in range(repeat))
    return (hop - inline) / n * 1e6


def profile_summary(n: int, top: int = 15) -> None:
    for protocol in PROTOCOLS:
        reads = RECORDINGS[protocol](n)
        prof = cProfile.Profile()
        asyncio.run(_timed("run", protocol, reads, prof))
        entries = sorted(prof.getstats(), key=lambda e: e.inlinetime, reverse=True)[:top]
        print(f"\n{protocol}, run stage under cProfile: top {top} by self time (µs per chunk, inflated by the profiler)")
        table = [[e.inlinetime / len(reads) * 1e6, e.callcount / len(reads), _where(e.code)] for e in entries]
        print_table(["self us/chunk", "calls/chunk", "function"], table)


def _where(code: Any) -> str:
    if isinstance(code, str):  # a built-in
        return code
    return f"{Path(code.co_filename).name}:{code.co_firstlineno} {code.co_name}"


def _side(engine_root: Path, n: int, repeat: int) -> dict[str, dict[str, float]]:
    """One measurement in a fresh process, with ``engine_root``'s ``inference`` package."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(engine_root), "-n", str(n), "--repeat", str(repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"measuring {engine_root} failed:\n{done.stderr}")
    result: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(base: str, n: int, repeat: int, blocks: int) -> None:
    base_root = worktree(base)
    best: dict[str, dict[str, dict[str, float]]] = {"base": {}, "head": {}}
    try:
        for block in range(blocks):
            order = (("base", base_root), ("head", ROOT)) if block % 2 == 0 else (("head", ROOT), ("base", base_root))
            for side, root in order:
                print(f"  block {block + 1}/{blocks}: {side} ...", flush=True)
                for protocol, stages in _side(root, n, repeat).items():
                    for stage, us in stages.items():
                        into = best[side].setdefault(protocol, {})
                        into[stage] = min(us, into.get(stage, us))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_root)], cwd=ROOT, check=False)
    rows = [
        [protocol, stage, best["base"][protocol][stage], best["head"][protocol][stage],
         f"{best['head'][protocol][stage] / best['base'][protocol][stage]:.2f}"]
        for protocol in PROTOCOLS for stage in STAGES
    ]
    print()
    print_table(["protocol", "stage", f"us/chunk base {base}", "us/chunk head", "head/base"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="chunks per recorded stream")
    parser.add_argument("--repeat", type=int, default=9, help="timed passes per protocol and stage (the fastest counts)")
    parser.add_argument("--base", help="also measure this revision's engine, alternating with this checkout's")
    parser.add_argument("--blocks", type=int, default=3, help="alternating processes per side with --base")
    parser.add_argument("--profile", action="store_true", help="print the top functions by self time per chunk")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: measure once, print JSON
    args = parser.parse_args(argv)
    if args.worker:
        sys.path.insert(0, args.worker)
        import inference

        assert Path(inference.__file__).resolve().is_relative_to(Path(args.worker).resolve()), inference.__file__
        print(json.dumps(measure(args.n, args.repeat)))
        return 0
    print(f"chunk_path: {machine_line()}\n{args.n} chunks per stream, best of {args.repeat} passes")
    if args.base:
        compare(args.base, args.n, args.repeat, args.blocks)
    else:
        got = measure(args.n, args.repeat)
        rows = [[p, s, got[p][s], "yes" if got[p][s] <= TARGET_US else "no"] for p in PROTOCOLS for s in STAGES]
        print_table(["protocol", "stage", "us/chunk", f"<= {TARGET_US:.0f} us"], rows)
    hop = handover_cost(args.n, args.repeat)
    print(f"\nof the run stage, the hand-over from the run's task to the consumer: {hop:.2f} us/event")
    if args.profile:
        profile_summary(args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
