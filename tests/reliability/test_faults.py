"""Faults, each with a session: the right error to the client, the next request still served, and
the session holding exactly what it should, row by row.

Already covered elsewhere (not repeated): stateless upstream failures (tests/inference/test_infer.py),
a 500 and a mid-stream error with a session (tests/inference/test_sessions.py), client disconnect
mid-stream (tests/e2e/test_streaming_live.py), a killed MCP child between calls
(tests/e2e/test_mcp_live.py), MCP timeouts (tests/engine/test_mcp_stdio.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from django.db import connection
from rest_framework.test import APIClient

from sessions.models import Session, SessionMessage
from tests.e2e.conftest import LiveServer
from tests.factories import BLOCK_PARAMS, EXPLODE_PARAMS, LLMModelFactory, StaffFactory, ToolFactory, bearer, save_fields
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.mcp_servers import children_running, free_port
from tests.mcp_servers.fixtures import DEMO_STDIO
from tests.sse import parse_sse, streamed_body

FULL = "one two three four five"


def rows(session_id: str) -> list[dict[str, Any]]:
    out = []
    for r in SessionMessage.objects.filter(session_id=session_id).order_by("seq"):
        out.append({"seq": r.seq, "role": r.role, "content": r.content, "incomplete": r.incomplete, "is_error": r.is_error,
                    "error": (r.error or {}).get("code"), "tool_calls": [c["name"] for c in r.tool_calls]})
    return out


def run(client: APIClient, endpoint: str, body: dict) -> tuple[int, dict]:
    """(status, error-or-result) for either endpoint: the stream's error event counts as the error."""
    res = client.post(endpoint, body, format="json")
    if endpoint.endswith("stream") and res.status_code == 200:
        kind, data = parse_sse(streamed_body(res))[-1]  # the stream ends with `done` or `error`
        return (200, data) if kind == "done" else (-1, data)
    return res.status_code, res.json()


# ---- model server faults, in-process -------------------------------------------------------------

FAULTS = {
    # name: (reply or None for "nothing listening", model timeout_s, JSON status, code)
    "refused": (None, 5, 502, "model_unavailable"),
    "http_500": (Reply(status=500), 5, 502, "model_unavailable"),
    "hang_past_timeout": (Reply(hang=True), 0.5, 504, "model_timeout"),
    "cut_mid_chunk": (Reply(content=FULL, chunk_size=3, truncate_after=2), 5, 502, "model_unavailable"),
    "malformed_json": (Reply(content=FULL, chunk_size=3, malformed=True), 5, 502, "model_unavailable"),
}


@pytest.mark.parametrize("endpoint", ["/v1/infer", "/v1/infer/stream"])
@pytest.mark.parametrize("protocol", ["openai", "ollama"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_model_fault_with_a_session(fault: str, protocol: str, endpoint: str, fake_llm: FakeLLMServer,
                                    alice_api: APIClient) -> None:
    reply, timeout_s, status, code = FAULTS[fault]
    if fault == "cut_mid_chunk" and endpoint == "/v1/infer":
        pytest.skip("/v1/infer asks the model server for one whole JSON body: there are no chunks to cut")
    if reply is None:  # a port nothing listens on
        model = LLMModelFactory(model_id="m", api_protocol=protocol, timeout_s=timeout_s,
                                api_base=f"http://127.0.0.1:{free_port()}" + ("/v1" if protocol == "openai" else ""))
    else:
        fake_llm.script([reply])
        model = LLMModelFactory(model_id="m", api_protocol=protocol, fake=fake_llm, timeout_s=timeout_s)
    started = time.monotonic()
    got_status, body = run(alice_api, endpoint, {"model_id": "m", "session_id": "new", "text": "hello?"})
    assert time.monotonic() - started < 4
    assert got_status == (status if endpoint == "/v1/infer" else -1), body  # -1: an `error` event in the stream
    assert body["error"]["code"] == code
    (session,) = Session.objects.all()
    assert session.run_token == ""  # the lock is released

    stored = rows(session.pk)
    assert [(r["seq"], r["role"]) for r in stored] == [(0, "user"), (1, "assistant")]
    assert stored[0]["content"] == "hello?" and not stored[0]["incomplete"] and stored[0]["error"] is None
    assert stored[1]["incomplete"] and stored[1]["error"] == code
    assert FULL.startswith(stored[1]["content"])  # whatever partial text came before the fault, nothing else

    # The next request on the same session is served and appends exactly one turn.
    save_fields(model, api_base=fake_llm.openai_base if protocol == "openai" else fake_llm.ollama_base, timeout_s=5)
    fake_llm.script([Reply(content="fine now")])
    got_status, body = run(alice_api, endpoint, {"model_id": "m", "session_id": session.pk, "text": "again"})
    assert got_status == 200 and body["content"] == "fine now"
    stored = rows(session.pk)
    assert [(r["role"], r["content"], r["incomplete"], r["error"]) for r in stored[2:]] == [
        ("user", "again", False, None), ("assistant", "fine now", False, None)]
    assert len(stored) == 4


# ---- tool faults, in-process ---------------------------------------------------------------------


@pytest.fixture
def fault_tools(db) -> None:
    ToolFactory(tool_id="explode", parameters=EXPLODE_PARAMS)
    ToolFactory(tool_id="block", timeout_s=0.3, parameters=BLOCK_PARAMS)


@pytest.mark.parametrize("endpoint", ["/v1/infer", "/v1/infer/stream"])
@pytest.mark.parametrize(("tool", "arguments", "says"), [
    ("explode", {"reason": "kaboom"}, "RuntimeError: kaboom"),
    ("block", {"seconds": 1}, "timed out"),
])
def test_a_failing_tool_is_an_error_result_in_the_session(
    tool: str, arguments: dict, says: str, endpoint: str, fault_tools: None, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    LLMModelFactory(model_id="m", fake=fake_llm, timeout_s=5)
    fake_llm.script([Reply(tool_calls=[(tool, arguments)]), Reply(content="It failed, sorry.")])
    # A hanging tool is cut at its timeout_s and the run goes on (timed through the real worker below: in-process,
    # the WSGI handler's per-request event loop waits for the abandoned thread when it closes).
    status, body = run(alice_api, endpoint, {"model_id": "m", "tool_ids": [tool], "session_id": "new", "text": "try it"})
    assert status == 200 and body["finish_reason"] == "stop" and body["content"] == "It failed, sorry."
    stored = rows(body["session_id"])
    assert [(r["role"], r["tool_calls"], r["is_error"], r["incomplete"]) for r in stored] == [
        ("user", [], False, False),
        ("assistant", [tool], False, False),
        ("tool", [], True, False),
        ("assistant", [], False, False),
    ]
    assert says in stored[2]["content"][0]["text"]
    # The model saw the error result, and the next request is served.
    fake_llm.script([Reply(content="next")])
    status, body = run(alice_api, endpoint, {"model_id": "m", "session_id": body["session_id"], "text": "and now?"})
    assert status == 200 and body["content"] == "next" and len(rows(body["session_id"])) == 6


# ---- through the real worker process -------------------------------------------------------------


@pytest.fixture
def live(transactional_db, live_server_proc: LiveServer, fake_llm: FakeLLMServer):
    LLMModelFactory(model_id="fast", fake=fake_llm, model_name="fast", timeout_s=5)
    LLMModelFactory(model_id="slow", fake=fake_llm, model_name="slow", timeout_s=2)
    ToolFactory(tool_id="block", timeout_s=0.3, parameters=BLOCK_PARAMS)
    client = httpx.Client(base_url=live_server_proc.url, timeout=30, headers=bearer(StaffFactory(username="ops")))
    yield client
    client.close()


@pytest.mark.e2e
def test_the_worker_serves_others_while_a_model_hangs_and_a_tool_blocks(live: httpx.Client, fake_llm: FakeLLMServer) -> None:
    fake_llm.script([Reply(hang=True)], model="slow")
    with ThreadPoolExecutor(4) as pool:
        hanging = pool.submit(live.post, "/v1/infer", json={"model_id": "slow", "session_id": "new", "text": "wait"})
        blocked = [
            pool.submit(live.post, "/v1/tools/call", json={"tool_id": "block", "arguments": {"seconds": 3}}) for _ in range(2)
        ]
        time.sleep(0.2)
        for _ in range(5):  # meanwhile, others are served at once
            started = time.monotonic()
            res = live.post("/v1/infer", json={"model_id": "fast", "text": "quick"})
            assert res.status_code == 200 and res.json()["content"] == "ok"
            assert time.monotonic() - started < 1.0
        for fut in blocked:
            res = fut.result()
            assert res.status_code == 200 and res.json()["is_error"] and "timed out" in res.json()["content"][0]["text"]
        res = hanging.result()
    assert res.status_code == 504 and res.json()["error"]["code"] == "model_timeout"
    sid = Session.objects.get().pk
    stored = rows(sid)
    assert [(r["role"], r["content"], r["incomplete"], r["error"]) for r in stored] == [
        ("user", "wait", False, None), ("assistant", "", True, "model_timeout")]
    assert Session.objects.get().run_token == ""
    res = live.post("/v1/infer", json={"model_id": "fast", "session_id": sid, "text": "still there?"})
    assert res.status_code == 200 and len(rows(sid)) == 4


def _wait_child(pid: int, needle: str, not_pid: int | None = None, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in children_running(needle, pid) if p != not_pid]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {needle} child of {pid}")


@pytest.mark.e2e
def test_mcp_child_killed_mid_call_and_between_calls(live: httpx.Client, live_server_proc: LiveServer,
                                                     fake_llm: FakeLLMServer) -> None:
    import os
    import signal

    res = live.post("/v1/tools/mcp", json={"mcpServers": {"demo_rel": DEMO_STDIO}})
    assert res.json()["servers"]["demo_rel"]["status"] == "connected", res.text
    try:
        worker = live_server_proc.proc.pid
        call = {"tool_id": "demo_rel.sleep", "arguments": {"seconds": 1.0}}
        first = _wait_child(worker, "demo_server")

        # Mid-call: the connection dies under the request. A call that was sent is never sent
        # again (it may have run): it answers mcp_connection_lost; the next call gets a new child.
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(live.post, "/v1/tools/call", json=call)
            time.sleep(0.4)
            os.kill(first, signal.SIGKILL)
            res = pending.result()
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["is_error"] is True and body["content"][0]["text"].startswith("mcp_connection_lost"), body
        res = live.post("/v1/tools/call", json={"tool_id": "demo_rel.add", "arguments": {"a": 1, "b": 1}})
        assert res.status_code == 200 and res.json()["structured"] == {"result": 2}, res.text
        second = _wait_child(worker, "demo_server", not_pid=first)

        # Between calls: the dead child is noticed on the next call and replaced.
        os.kill(second, signal.SIGKILL)
        time.sleep(0.3)
        res = live.post("/v1/tools/call", json={"tool_id": "demo_rel.add", "arguments": {"a": 2, "b": 3}})
        assert res.status_code == 200 and res.json()["structured"] == {"result": 5}, res.text
        third = _wait_child(worker, "demo_server", not_pid=second)
        assert third not in (first, second) and len(children_running("demo_server", worker)) == 1

        # Mid-call inside a session's tool loop: the session holds the call, its error, and the answer.
        fake_llm.script([Reply(tool_calls=[("demo_rel_sleep", {"seconds": 1.0})]), Reply(content="rested")], model="fast")
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(live.post, "/v1/infer", json={"model_id": "fast", "tool_ids": ["demo_rel.sleep"],
                                                                 "session_id": "new", "text": "rest"})
            time.sleep(0.5)
            os.kill(third, signal.SIGKILL)
            res = pending.result()
        assert res.status_code == 200 and res.json()["content"] == "rested", res.text
        stored = rows(res.json()["session_id"])
        assert [(r["role"], r["tool_calls"], r["is_error"]) for r in stored] == [

            ("user", [], False), ("assistant", ["demo_rel_sleep"], False), ("tool", [], True), ("assistant", [], False)]
        assert stored[2]["content"][0]["text"].startswith("mcp_connection_lost")
    finally:
        live.delete("/v1/tools/mcp/demo_rel")


@pytest.mark.e2e
def test_a_briefly_locked_sqlite_database_makes_writes_wait_not_fail(live: httpx.Client, fake_llm: FakeLLMServer) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only: PostgreSQL has row locks, not a database lock")
    held = threading.Event()

    def hold_lock() -> None:
        other = sqlite3.connect(connection.settings_dict["NAME"], timeout=5, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            held.set()
            time.sleep(1.0)
            other.execute("COMMIT")
        finally:
            other.close()

    locker = threading.Thread(target=hold_lock)
    locker.start()
    assert held.wait(5)
    started = time.monotonic()
    res = live.post("/v1/infer", json={"model_id": "fast", "session_id": "new", "text": "write me"})
    waited = time.monotonic() - started
    locker.join()
    assert res.status_code == 200, res.text
    assert waited > 0.5  # it really waited for the lock
    stored = rows(res.json()["session_id"])
    assert [(r["role"], r["content"], r["incomplete"]) for r in stored] == [
        ("user", "write me", False),
        ("assistant", "ok", False),
    ]
    assert live.post("/v1/infer", json={"model_id": "fast", "text": "next"}).status_code == 200
