"""Soak: 2,000 sequential requests against one real worker, mixing /v1/infer, /v1/infer/stream and
/v1/tools/call, with the fake model answering at once. After a warm-up, the worker's open file
descriptors, threads and child processes must not grow, and its RSS only boundedly."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from tests.e2e.conftest import LiveServer
from tests.factories import ADD_PARAMS, LLMModelFactory, ToolFactory, UserFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer
from tests.mcp_servers import children

pytestmark = pytest.mark.e2e

TOTAL = int(os.environ.get("AGENTSITE_SOAK_REQUESTS", "2000"))
WARMUP = 200
RSS_GROWTH_LIMIT = 50 * 1024 * 1024


def snapshot(pid: int) -> dict[str, int]:
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": int(status["Threads"]),
            "children": len(children(pid)), "rss": int(status["VmRSS"].split()[0]) * 1024}


def test_2000_requests_leak_no_fds_threads_children_or_memory(transactional_db, fake_llm: FakeLLMServer) -> None:
    headers = bearer(UserFactory(username="soak"))
    LLMModelFactory(model_id="m", fake=fake_llm, model_name="m", timeout_s=10)
    ToolFactory(tool_id="math.add", parameters=ADD_PARAMS)
    server = LiveServer()
    pid = server.proc.pid
    calls = [
        lambda c: c.post("/v1/infer", json={"model_id": "m", "text": "hi"}),
        lambda c: c.post("/v1/tools/call", json={"tool_id": "math.add", "arguments": {"a": 2, "b": 3}}),
        lambda c: c.post("/v1/infer/stream", json={"model_id": "m", "text": "hi"}),
    ]
    before = middle = after = {}
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
            started = time.monotonic()
            for i in range(TOTAL):
                if i == WARMUP:
                    fake_llm.reset()  # the fake's request log is ours, not the worker's, but keep it small
                    before = snapshot(pid)
                if i == (WARMUP + TOTAL) // 2:
                    middle = snapshot(pid)
                res = calls[i % 3](client)
                assert res.status_code == 200, (i, res.text)
                if i % 3 == 2:
                    assert "event: done" in res.text
            elapsed = time.monotonic() - started
            time.sleep(0.2)
            after = snapshot(pid)
    finally:
        server.stop()
    print(f"\nsoak: {TOTAL} requests in {elapsed:.1f} s ({TOTAL / elapsed:.0f}/s); after warm-up {before}; "
          f"half-way {middle}; at the end {after}")
    # Thread pools grow lazily up to their size, at any point of the run (seen: +1 thread and its
    # SQLite connection's 2 fds, in the second half). A leak grows with the request count instead:
    # a thousand requests per half would add hundreds, so a few are the bound.
    for what, slack in (("fds", 4), ("threads", 2), ("children", 0)):
        assert after[what] <= before[what] + slack, (what, before, middle, after)
        assert after[what] <= middle[what] + slack, (what, before, middle, after)
    assert after["rss"] - before["rss"] < RSS_GROWTH_LIMIT, (before, after)
