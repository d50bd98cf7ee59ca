"""A real worker follows a live AGENTSITE_* setting stored by another process (issue 18): without
Redis through the stamp file in the shared data dir, with Redis over the bus."""

from __future__ import annotations

import httpx
import pytest

from registry.env_store import env_delete, env_set
from registry.models import EnvVar
from tests.e2e.conftest import LiveServer
from tests.factories import LLMModelFactory, UserFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer, Reply

pytestmark = pytest.mark.e2e


def test_a_worker_applies_live_settings_stored_by_another_process(live_server_proc: LiveServer, transactional_db,
                                                                  fake_llm: FakeLLMServer) -> None:
    # This test process stands for another worker: its writes reach the server only as a
    # change announcement, never through the server's own code.
    headers = bearer(UserFactory(username="live-settings"))
    LLMModelFactory(model_id="ls", fake=fake_llm)

    def infer(**body: object) -> httpx.Response:
        return httpx.post(live_server_proc.url + "/v1/infer", json={"model_id": "ls", "text": "hi", **body},
                          headers=headers, timeout=30)

    def streamed() -> str:
        fake_llm.script([Reply(content="late", first_delay_s=1.0)])
        with httpx.stream("POST", live_server_proc.url + "/v1/infer/stream", json={"model_id": "ls", "text": "x"},
                          headers=headers, timeout=30) as res:
            return res.read().decode()

    try:
        fake_llm.script("ok")
        assert infer(max_tool_rounds=3).status_code == 200
        env_set(key="AGENTSITE_MAX_TOOL_ROUNDS_LIMIT", value="2", is_secret=False)
        res = infer(max_tool_rounds=3)
        assert res.status_code == 400 and "at most 2" in res.json()["error"]["message"]
        env_delete(key="AGENTSITE_MAX_TOOL_ROUNDS_LIMIT")
        fake_llm.script("ok")
        assert infer(max_tool_rounds=3).status_code == 200

        # read by the streaming view on the event loop, from the values the run began with
        assert ": ping" not in streamed()  # the start-up interval: 15 s
        env_set(key="AGENTSITE_SSE_PING_S", value="0.2", is_secret=False)
        raw = streamed()
        assert raw.count(": ping\n\n") >= 2 and "event: done" in raw
    finally:
        # The server is shared by the session's tests: leave it as it was (a flush sends no signal).
        for key in ("AGENTSITE_MAX_TOOL_ROUNDS_LIMIT", "AGENTSITE_SSE_PING_S"):
            if EnvVar.objects.filter(key=key).exists():
                env_delete(key=key)
