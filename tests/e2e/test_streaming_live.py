"""Streaming through a real Daphne process: disconnects and cancels reach the model server."""

from __future__ import annotations

import time

import httpx
import pytest

from sessions.models import SessionMessage
from tests.e2e.conftest import LiveServer, sse_events
from tests.factories import LLMModelFactory, UserFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer, Reply

pytestmark = pytest.mark.e2e


@pytest.fixture
def setup(transactional_db, fake_llm: FakeLLMServer):
    for protocol in ("openai", "ollama"):
        LLMModelFactory(model_id=f"slow-{protocol}", api_protocol=protocol, fake=fake_llm, model_name="slow", timeout_s=30)
    return bearer(UserFactory(username="eve"))


@pytest.mark.parametrize("protocol", ["openai", "ollama"])
def test_client_disconnect_cancels_upstream_and_keeps_the_partial(live_server_proc: LiveServer, setup, fake_llm: FakeLLMServer,
                                                                   protocol: str) -> None:
    fake_llm.script([Reply(content="word " * 200, chunk_size=5, delay_s=0.05)])
    body = {"model_id": f"slow-{protocol}", "session_id": "new", "text": "talk"}
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", live_server_proc.url + "/v1/infer/stream", json=body, headers=setup) as res:
            assert res.status_code == 200
            events = sse_events(res.iter_lines(), count=5)
    sid = events[0][1]["session_id"]
    assert fake_llm.wait_disconnects(1, timeout=10), "the upstream request was not cancelled"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and SessionMessage.objects.filter(session_id=sid).count() < 2:
        time.sleep(0.1)
    partial = SessionMessage.objects.get(session_id=sid, seq=1)
    assert partial.incomplete and partial.content.startswith("word") and len(partial.content) < 1000


def test_cancel_stops_a_slow_stream_and_keeps_the_partial(live_server_proc: LiveServer, setup, fake_llm: FakeLLMServer) -> None:
    fake_llm.script([Reply(content="slow " * 200, chunk_size=5, delay_s=0.05)])
    body = {"model_id": "slow-openai", "session_id": "new", "text": "talk"}
    with httpx.Client(timeout=15) as client:
        with client.stream("POST", live_server_proc.url + "/v1/infer/stream", json=body, headers=setup) as res:
            lines = res.iter_lines()
            first = sse_events(lines, count=3)
            sid = first[0][1]["session_id"]
            cancel = client.post(f"{live_server_proc.url}/v1/sessions/{sid}/cancel", headers=setup)
            assert cancel.status_code == 202, cancel.text
            rest = sse_events(lines, until="done")
    done = rest[-1]
    assert done[0] == "done" and done[1]["finish_reason"] == "cancelled"
    assert done[1]["content"].startswith("slow") and len(done[1]["content"]) < 1000
    assert fake_llm.wait_disconnects(1, timeout=10)
    partial = SessionMessage.objects.get(session_id=sid, seq=1)
    assert partial.incomplete and partial.content == done[1]["content"]


def test_keepalive_pings_while_the_model_thinks(setup, fake_llm: FakeLLMServer) -> None:
    server = LiveServer({"AGENTSITE_SSE_PING_S": "0.2"})
    try:
        fake_llm.script([Reply(content="late", first_delay_s=1.0)])
        with httpx.Client(timeout=10) as client:
            with client.stream(
                "POST", server.url + "/v1/infer/stream", json={"model_id": "slow-ollama", "text": "x"}, headers=setup
            ) as res:
                raw = res.read().decode()
        assert raw.count(": ping\n\n") >= 2 and "event: done" in raw
    finally:
        server.stop()
