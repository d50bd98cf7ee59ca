"""Scale-out: two Daphne workers on one database and one Redis behave as one service.

Runs only when REDIS_URL is set (the PostgreSQL pass of .ci/run sets it).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LiveServer, sse_events
from tests.e2e.scaleout import wait_until
from tests.factories import StaffFactory, UserFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.mcp_servers import PROD_MODULE, REPO

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (multi-worker)")]


@pytest.fixture(scope="module")
def workers(django_db_setup, django_db_blocker) -> Iterator[tuple[LiveServer, LiveServer]]:
    a, b = LiveServer(), LiveServer()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def staff(transactional_db) -> dict[str, str]:
    return bearer(StaffFactory(username="ops"))


def test_two_workers_share_registries_env_cancel_and_locks(workers, staff, fake_llm: FakeLLMServer) -> None:
    a, b = workers
    # wake both listeners (they start on a worker's first request)
    for w in (a, b):
        httpx.get(w.url + "/v1/models", headers=staff)

    # a model registered through A is used by B at once
    model = {"model_id": "shared", "api_protocol": "openai", "api_base": fake_llm.openai_base, "model_name": "m",
             "api_key": "${TWO_WORKER_TOKEN}"}
    assert httpx.post(a.url + "/v1/models", json=model, headers=staff).status_code == 201
    # an env change through A reaches B's environment (B sends the resolved key upstream)
    assert (
        httpx.post(a.url + "/v1/env", json={"key": "TWO_WORKER_TOKEN", "value": "tok-from-a"}, headers=staff).status_code == 201
    )
    fake_llm.script(["hello from B"])
    res = httpx.post(b.url + "/v1/infer", json={"model_id": "shared", "text": "hi"}, headers=staff, timeout=10)
    assert res.json()["content"] == "hello from B"
    assert fake_llm.last_request().headers["authorization"] == "Bearer tok-from-a"

    # a stream held by B is cancelled by a request sent to A; while it runs, A answers 409
    fake_llm.script([Reply(content="slow " * 300, chunk_size=5, delay_s=0.05)])
    with httpx.Client(timeout=20) as client:
        with client.stream("POST", b.url + "/v1/infer/stream", json={"model_id": "shared", "session_id": "new", "text": "go"},
                           headers=staff) as stream:
            lines = stream.iter_lines()
            sid = sse_events(lines, count=2)[0][1]["session_id"]
            busy = client.post(
                a.url + "/v1/infer", json={"model_id": "shared", "session_id": sid, "text": "again"}, headers=staff
            )
            assert busy.status_code == 409 and busy.json()["error"]["code"] == "session_busy"
            assert client.post(f"{a.url}/v1/sessions/{sid}/cancel", headers=staff).status_code == 202
            done = sse_events(lines, until="done")[-1]
    assert done[0] == "done" and done[1]["finish_reason"] == "cancelled"


def test_quotas_and_key_revocation_hold_across_both_workers(workers, staff, fake_llm: FakeLLMServer) -> None:
    """One user spreading requests over two workers meets one limit; a key revoked through one
    worker is refused by the other at once."""
    a, b = workers
    model = {"model_id": "metered", "api_protocol": "openai", "api_base": fake_llm.openai_base, "model_name": "m"}
    assert httpx.post(a.url + "/v1/models", json=model, headers=staff).status_code == 201
    user = bearer(UserFactory(username="spreader"))
    put = httpx.put(a.url + "/v1/quotas/user/spreader", json={"requests_per_minute": 4}, headers=staff)
    assert put.status_code == 201, put.text
    if time.time() % 60 > 50:  # all requests inside one minute window
        time.sleep(61 - time.time() % 60)
    fake_llm.script(["ok"] * 4)
    statuses = [httpx.post(w.url + "/v1/infer", json={"model_id": "metered", "text": "hi"}, headers=user, timeout=10)
                for w in (a, b, a, b, a, b)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 200, 429, 429]
    assert {r.json()["error"]["code"] for r in statuses[4:]} == {"rate_limited"} and statuses[5].headers["Retry-After"]

    # tokens: what one worker recorded counts on the other (each worker's reads wait for the
    # records it writes just after its answers: ask both before reading the total)
    httpx.get(b.url + "/v1/me", headers=user)
    used = httpx.get(a.url + "/v1/me", headers=user).json()["usage_today"]["total_tokens"]
    limit = {"tokens_per_day": used + 10}  # and no request limit any more
    assert httpx.put(b.url + "/v1/quotas/user/spreader", json=limit, headers=staff).status_code == 200
    fake_llm.script([Reply(content="big", usage={"prompt_tokens": 8, "completion_tokens": 5})])
    spent = httpx.post(a.url + "/v1/infer", json={"model_id": "metered", "text": "hi"}, headers=user, timeout=10)
    assert spent.status_code == 200
    # A writes a stateless run's record just after its answer; its own reads wait for it
    assert httpx.get(a.url + "/v1/me", headers=user).json()["usage_today"]["total_tokens"] == used + 13
    refused = httpx.post(b.url + "/v1/infer", json={"model_id": "metered", "text": "hi"}, headers=user, timeout=10)
    assert refused.status_code == 429 and refused.json()["error"]["detail"]["used"] == used + 13
    assert httpx.get(b.url + "/v1/me", headers=user).json()["usage_today"]["total_tokens"] == used + 13

    # a key made and revoked through A is refused by A at once, and by B (which remembers the keys
    # that worked) as soon as the change reaches it over the bus: milliseconds
    made = httpx.post(a.url + "/v1/me/api-keys", json={"name": "temp"}, headers=user).json()
    temp = {"Authorization": f"Bearer {made['key']}"}
    assert httpx.get(b.url + "/v1/me", headers=temp).status_code == 200
    assert httpx.delete(f"{a.url}/v1/me/api-keys/{made['id']}", headers=user).status_code == 204
    assert httpx.get(a.url + "/v1/me", headers=temp).status_code == 401
    wait_until(lambda: httpx.get(b.url + "/v1/me", headers=temp).status_code == 401, 1, "B to refuse the revoked key")


def test_deleting_through_one_worker_cancels_the_call_running_on_the_other(
    workers: tuple[LiveServer, LiveServer], staff: dict[str, str], tmp_path: Path
) -> None:
    a, b = workers
    for w in (a, b):  # wake both bus listeners
        httpx.get(w.url + "/v1/tools", headers=staff)
    config = {"command": sys.executable, "args": ["-m", PROD_MODULE], "cwd": str(REPO),
              "env": {"PROD_COUNT_DIR": str(tmp_path)}}
    res = httpx.post(a.url + "/v1/tools/mcp", json={"mcpServers": {"shared": config}}, headers=staff, timeout=30)
    assert res.json()["servers"]["shared"]["status"] == "connected"

    answer: dict[str, Any] = {}

    def call_on_b() -> None:
        body = {"tool_id": "shared.sleep", "arguments": {"seconds": 5, "key": "two"}}
        answer.update(httpx.post(b.url + "/v1/tools/call", json=body, headers=staff, timeout=30).json())

    thread = threading.Thread(target=call_on_b)
    thread.start()
    marker = tmp_path / "two"
    deadline = time.monotonic() + 20
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "start\n"

    started = time.monotonic()
    assert httpx.delete(a.url + "/v1/tools/mcp/shared", headers=staff, timeout=30).status_code == 204
    thread.join(20)
    assert time.monotonic() - started < 4  # well before the 5 s call would have ended
    assert answer["is_error"] is True and answer["content"][0]["text"].startswith("cancelled")
    time.sleep(5.5)
    assert marker.read_text() == "start\n"  # the call never finished on the server
