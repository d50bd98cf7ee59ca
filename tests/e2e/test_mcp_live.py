"""MCP sharing through a real worker: one child process for many concurrent users, and recovery."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from tests.e2e.conftest import LiveServer
from tests.factories import LLMModelFactory, StaffFactory, UserFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.mcp_servers import children_running
from tests.mcp_servers.fixtures import TIME_STDIO

pytestmark = pytest.mark.e2e


@pytest.fixture
def keys(transactional_db):
    return {"staff": bearer(StaffFactory(username="root")),
            "users": [bearer(UserFactory(username=f"u{i}")) for i in range(5)]}


def test_many_users_share_one_mcp_process_and_a_killed_one_comes_back(
    live_server_proc: LiveServer, keys, fake_llm: FakeLLMServer
) -> None:
    url = live_server_proc.url
    res = httpx.post(url + "/v1/tools/mcp", json={"mcpServers": {"time": TIME_STDIO}}, headers=keys["staff"], timeout=30)
    assert res.json()["servers"]["time"]["status"] == "connected", res.text
    LLMModelFactory(model_id="m", fake=fake_llm, model_name="m")
    fake_llm.script([Reply(tool_calls=[("time_get_current_time", {"timezone": "UTC"})]), Reply(content="done")] * 10)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            calls = [client.post("/v1/tools/call", json={"tool_id": "time.get_current_time", "arguments": {"timezone": "UTC"}},
                                 headers=keys["users"][i % 5]) for i in range(40)]
            infers = [client.post("/v1/infer", json={"model_id": "m", "tool_ids": ["time.get_current_time"], "text": "time?"},
                                  headers=keys["users"][i % 5]) for i in range(10)]
            return await asyncio.gather(*calls, *infers)

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200][:3]
    assert all(r.json().get("is_error") is False for r in responses[:40])
    pids = children_running("mcp_server_time", live_server_proc.proc.pid)
    assert len(pids) == 1, pids

    os.kill(pids[0], signal.SIGKILL)
    time.sleep(0.2)
    res = httpx.post(url + "/v1/tools/call", json={"tool_id": "time.get_current_time", "arguments": {"timezone": "UTC"}},
                     headers=keys["users"][0], timeout=30)
    assert res.status_code == 200 and res.json()["is_error"] is False, res.text
    new_pids = children_running("mcp_server_time", live_server_proc.proc.pid)
    assert len(new_pids) == 1 and new_pids != pids
