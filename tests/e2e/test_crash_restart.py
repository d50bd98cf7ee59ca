"""A worker killed mid-stream (SIGKILL, real process, real database): after a restart the
partial answer is kept, marked incomplete, and the session is free again within its lease; a
model call that finished before the kill keeps its usage record."""

from __future__ import annotations

import time

import httpx
import pytest

from sessions.models import SessionMessage
from tests.e2e.conftest import LiveServer, sse_events
from tests.factories import BLOCK_PARAMS, LLMModelFactory, ToolFactory, UserFactory, bearer
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


def test_a_finished_model_call_is_recorded_while_the_run_goes_on_and_survives_a_kill(
    transactional_db, fake_llm: FakeLLMServer
) -> None:
    LLMModelFactory(model_id="m", fake=fake_llm, timeout_s=30)
    ToolFactory(tool_id="slow.block", parameters=BLOCK_PARAMS)  # sleeps as long as the model asks
    headers = bearer(UserFactory(username="metered"))
    fake_llm.script([
        Reply(tool_calls=[("block", {"seconds": 30})], usage={"prompt_tokens": 11, "completion_tokens": 4}),
        Reply(content="never reached"),
    ])
    recorded = [{"key": "chat", "requests": 1, "prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}]

    def usage(server: LiveServer) -> list[dict]:
        res = httpx.get(server.url + "/v1/usage", params={"group_by": "kind"}, headers=headers, timeout=10)
        assert res.status_code == 200, res.text
        return res.json()["data"]

    first = LiveServer()
    try:
        with httpx.Client(timeout=10) as client:
            with client.stream("POST", first.url + "/v1/infer/stream", headers=headers,
                               json={"model_id": "m", "session_id": "new", "tool_ids": ["slow.block"], "text": "wait"}) as res:
                lines = res.iter_lines()  # kept open: a dropped iterator closes the stream and cancels the run
                events = sse_events(lines, until="message")
                assert events[-2][0] == "tool_call"  # the first round is over; the tool now blocks for 30 s
                deadline, seen = time.monotonic() + 5, []
                while time.monotonic() < deadline and not seen:
                    seen = usage(first)
                    time.sleep(0.1)
                assert seen == recorded  # written while the run is still going
                first.proc.kill()  # SIGKILL inside the tool call: the run's end hook never runs
                first.proc.wait()
    finally:
        first.stop()

    second = LiveServer()
    try:
        assert usage(second) == recorded
    finally:
        second.stop()
