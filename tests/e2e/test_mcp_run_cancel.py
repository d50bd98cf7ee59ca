"""A run's MCP call through a real Daphne process: cancelling the run, or its streaming client
going away, cancels the call on the MCP server (notifications/cancelled), which never finishes it
(docs/mcp.md, "Cancellation")."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import LiveServer, eventually, sse_events
from tests.factories import LLMModelFactory, StaffFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.mcp_servers import PROD_MODULE, REPO

pytestmark = pytest.mark.e2e


@pytest.fixture
def staff(transactional_db, live_server_proc: LiveServer, fake_llm: FakeLLMServer, tmp_path: Path) -> dict[str, str]:
    """A staff key, the model and the fixture server registered (recording into ``tmp_path``)."""
    LLMModelFactory(model_id="caller", api_protocol="openai", fake=fake_llm, timeout_s=30)
    headers = bearer(StaffFactory(username="ops"))
    config = {"command": sys.executable, "args": ["-m", PROD_MODULE], "cwd": str(REPO),
              "env": {"PROD_COUNT_DIR": str(tmp_path)}}
    res = httpx.post(live_server_proc.url + "/v1/tools/mcp", json={"mcpServers": {"slow": config}}, headers=headers,
                     timeout=30)
    assert res.json()["servers"]["slow"]["status"] == "connected", res.text
    return headers


@pytest.mark.parametrize("how", ["cancel", "disconnect"])
def test_ending_a_run_cancels_its_mcp_call_on_the_server(how: str, live_server_proc: LiveServer, staff: dict[str, str],
                                                         fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.script([Reply(tool_calls=[("slow_sleep", {"seconds": 4, "key": how})]), Reply(content="unused")])
    marker = tmp_path / how
    body = {"model_id": "caller", "tool_ids": ["slow.sleep"], "session_id": "new", "text": "go"}
    with httpx.Client(timeout=15) as client:
        with client.stream("POST", live_server_proc.url + "/v1/infer/stream", json=body, headers=staff) as res:
            lines = res.iter_lines()
            sid = sse_events(lines, count=1)[0][1]["session_id"]
            assert eventually(lambda: marker.exists() and marker.read_text() == "start\n", timeout=15)
            if how == "cancel":
                assert client.post(f"{live_server_proc.url}/v1/sessions/{sid}/cancel", headers=staff).status_code == 202
                done = sse_events(lines, until="done")[-1]
                assert done[0] == "done" and done[1]["finish_reason"] == "cancelled"
    time.sleep(4.5)  # past the call's 4 s: the server stopped its handler on notifications/cancelled
    assert marker.read_text() == "start\n"
