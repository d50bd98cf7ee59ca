"""A worker killed mid-stream (SIGKILL, real process, real database): after a restart the
partial answer is kept, marked incomplete, and the session is free again within its lease."""

from __future__ import annotations

import time

import httpx
import pytest

from sessions.models import SessionMessage
from tests.e2e.conftest import LiveServer, sse_events
from tests.factories import LLMModelFactory, UserFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer, Reply

pytestmark = pytest.mark.e2e

LEASE_S = 6  # production default 45: "noticed within a minute"


def test_a_killed_worker_leaves_the_partial_and_frees_the_session(transactional_db, fake_llm: FakeLLMServer) -> None:
    LLMModelFactory(model_id="slow", fake=fake_llm, model_name="slow", timeout_s=30)
    headers = bearer(UserFactory(username="crash"))
    env = {"AGENTSITE_RUN_LEASE_S": str(LEASE_S), "AGENTSITE_RUN_CHECKPOINT_S": "0.2"}
    fake_llm.script([Reply(content="word " * 400, chunk_size=5, delay_s=0.05), Reply(content="back again")])

    first = LiveServer(env)
    try:
        with httpx.Client(timeout=10) as client:
            with client.stream("POST", first.url + "/v1/infer/stream", headers=headers,
                               json={"model_id": "slow", "session_id": "new", "text": "talk"}) as res:
                events = sse_events(res.iter_lines(), count=20)
                sid = events[0][1]["session_id"]
                time.sleep(1.0)  # several checkpoints
                first.proc.kill()  # SIGKILL: no finally, no shutdown hook runs
                first.proc.wait()
    except httpx.HTTPError:
        pass  # the connection dies with the worker
    finally:
        first.stop()

    partial = SessionMessage.objects.get(session_id=sid, seq=1)
    assert partial.role == "assistant" and partial.incomplete and partial.content.startswith("word")

    second = LiveServer(env)
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            answer = httpx.post(second.url + "/v1/infer", headers=headers, timeout=30,
                                json={"model_id": "slow", "session_id": sid, "text": "still there?"})
            if answer.status_code != 409:
                break
            time.sleep(0.5)
        assert answer is not None and answer.status_code == 200, answer.text if answer else None
        assert answer.json()["content"] == "back again"
    finally:
        second.stop()
    kept = SessionMessage.objects.get(session_id=sid, seq=1)
    assert kept.incomplete and kept.content == partial.content
