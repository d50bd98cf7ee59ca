"""MCP in production through HTTP (docs/mcp.md): parallel registration, disabled entries, tool ids
with "/" and ".", tool lists that change under a registered server, tools that require tasks,
tool_progress and prompt tool_result events, what of a result reaches the model."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from registry.models import LLMModel, MCPServer, Tool
from tests.factories import LLMModelFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.inference.conftest import sent_messages, stream
from tests.mcp_servers import EVERYTHING_BIN, PROD_MODULE, REPO, children_running, wait_until
from tests.mcp_servers.fixtures import DEMO_STDIO

pytestmark = pytest.mark.usefixtures("mcp")


def prod(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": ["-m", PROD_MODULE], "cwd": str(REPO),
            "env": {"PROD_COUNT_DIR": str(tmp_path), **extra.pop("env", {})}, **extra}


def register(api: APIClient, servers: dict[str, Any]) -> dict[str, Any]:
    res = api.post("/v1/tools/mcp", {"mcpServers": servers}, format="json")
    assert res.status_code == 200, res.content
    return res.json()["servers"]


def test_servers_register_in_parallel(staff_api: APIClient, tmp_path: Path) -> None:
    slow = {"env": {"PROD_START_DELAY": "1.5"}}
    started = time.monotonic()
    assert register(staff_api, {"alone": prod(tmp_path, **slow)})["alone"]["status"] == "connected"
    alone = time.monotonic() - started
    started = time.monotonic()
    servers = register(staff_api, {f"slow{i}": prod(tmp_path, env={"PROD_START_DELAY": "1.5"}) for i in range(3)})
    together = time.monotonic() - started
    assert all(s["status"] == "connected" for s in servers.values())
    assert together < 2 * alone, (alone, together)  # serial registration would take three times as long


def test_a_disabled_entry_is_registered_but_not_started(staff_api: APIClient, tmp_path: Path) -> None:
    servers = register(staff_api, {"sleepy": prod(tmp_path, disabled=True)})
    assert servers["sleepy"] == {"status": "disconnected", "disabled": True, "tool_ids": []}
    assert MCPServer.objects.get(name="sleepy").status == "disconnected"
    assert not children_running(PROD_MODULE)


def test_tool_ids_with_slash_and_dot_reach_every_tool_route(staff_api: APIClient, alice_api: APIClient,
                                                           tmp_path: Path) -> None:
    assert "prod.fs/read.v2" in register(staff_api, {"prod": prod(tmp_path)})["prod"]["tool_ids"]
    tool = alice_api.get("/v1/tools/prod.fs/read.v2")
    assert tool.status_code == 200 and tool.json()["tool_id"] == "prod.fs/read.v2"
    res = alice_api.post("/v1/tools/call", {"tool_id": "prod.fs/read.v2", "arguments": {"path": "x"}}, format="json")
    assert res.json()["content"][0]["text"] == "read x"
    res = staff_api.patch("/v1/tools/prod.fs/read.v2", {"enabled": False}, format="json")
    assert res.status_code == 200 and res.json()["enabled"] is False


@pytest.mark.django_db(transaction=True)  # the re-sync runs in another thread, on its own connection
def test_a_changed_tool_list_updates_the_registered_tools(staff_api: APIClient, alice_api: APIClient,
                                                          tmp_path: Path) -> None:
    assert "shape.reverse" not in register(staff_api, {"shape": prod(tmp_path)})["shape"]["tool_ids"]
    assert alice_api.get("/v1/tools/shape.background_job").status_code == 200
    res = alice_api.post("/v1/tools/call", {"tool_id": "shape.reshape"}, format="json")
    assert res.json()["content"][0]["text"] == "reshaped"
    # added and removed within seconds, without re-registering
    assert wait_until(lambda: Tool.objects.filter(tool_id="shape.reverse").exists())
    assert wait_until(lambda: not Tool.objects.filter(tool_id="shape.background_job").exists())
    res = alice_api.post("/v1/tools/call", {"tool_id": "shape.reverse", "arguments": {"text": "abc"}}, format="json")
    assert res.json()["content"][0]["text"] == "cba"


@pytest.mark.skipif(not EVERYTHING_BIN.exists() and "CI" not in __import__("os").environ,
                    reason="npm ci in tests/mcp_servers installs @modelcontextprotocol/server-everything (.ci/run does)")
def test_tools_that_require_tasks_are_not_registered(staff_api: APIClient) -> None:
    status = register(staff_api, {"everything": {"command": str(EVERYTHING_BIN), "args": ["stdio"]}})["everything"]
    assert status["status"] == "connected" and "everything.echo" in status["tool_ids"]
    assert "everything.simulate-research-query" not in status["tool_ids"]
    assert "task" in status["not_offered"]["simulate-research-query"]


@pytest.fixture(params=["openai", "ollama"])
def plain_model(request, db, fake_llm: FakeLLMServer) -> LLMModel:
    """A model without vision, once per protocol."""
    return LLMModelFactory(model_id=f"plain-{request.param}", api_protocol=request.param, fake=fake_llm,
                           supports_vision=False, timeout_s=10)


def test_tool_results_stream_as_each_call_ends_with_progress(plain_model: LLMModel, fake_llm: FakeLLMServer,
                                                             staff_api: APIClient, alice_api: APIClient,
                                                             tmp_path: Path) -> None:
    register(staff_api, {"prod": prod(tmp_path)})
    fake_llm.script([
        Reply(tool_calls=[("prod_sleep", {"seconds": 1.5}, "slow"),
                          ("prod_slow_progress", {"steps": 2, "delay": 0.05}, "quick")]),
        Reply(content="done"),
    ])
    events = stream(alice_api, {"model_id": plain_model.model_id, "tool_ids": ["prod.sleep", "prod.slow_progress"],
                                "text": "go"})
    progress = [data for name, data in events if name == "tool_progress"]
    assert progress == [
        {"id": "quick", "tool_id": "prod.slow_progress", "progress": 1, "total": 2, "message": "step 1 of 2"},
        {"id": "quick", "tool_id": "prod.slow_progress", "progress": 2, "total": 2, "message": "step 2 of 2"},
    ]
    # the quick call's result is sent before the slow one's, though it was called second
    assert [data["id"] for name, data in events if name == "tool_result"] == ["quick", "slow"]
    # the conversation keeps the calls' order
    assert [data["tool_call_id"] for name, data in events if name == "message" and data["role"] == "tool"] == [
        "slow", "quick"]


def test_a_large_result_is_cut_for_the_model_and_whole_for_the_direct_call(
    plain_model: LLMModel, fake_llm: FakeLLMServer, staff_api: APIClient, alice_api: APIClient, tmp_path: Path, settings
) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "TOOL_RESULT_MAX_CHARS": 1000}
    register(staff_api, {"prod": prod(tmp_path)})
    direct = alice_api.post("/v1/tools/call", {"tool_id": "prod.big", "arguments": {"mb": 0.5}}, format="json").json()
    assert len(direct["content"][0]["text"]) == 512 * 1024
    fake_llm.script([Reply(tool_calls=[("prod_big", {"mb": 0.5})]), Reply(content="seen")])
    alice_api.post("/v1/infer", {"model_id": plain_model.model_id, "tool_ids": ["prod.big"], "text": "go"}, format="json")
    tool_text = tool_message_text(sent_messages(fake_llm))
    assert tool_text.startswith("0123456789abcdef") and len(tool_text) < 1300
    assert "524,288" in tool_text and "AGENTSITE_TOOL_RESULT_MAX_CHARS" in tool_text


def test_tool_images_are_not_sent_to_a_model_without_vision(plain_model: LLMModel, fake_llm: FakeLLMServer,
                                                            staff_api: APIClient, alice_api: APIClient) -> None:
    register(staff_api, {"demo": DEMO_STDIO})
    fake_llm.script([Reply(tool_calls=[("demo_pixel", {})]), Reply(content="no picture for me")])
    res = alice_api.post("/v1/infer", {"model_id": plain_model.model_id, "tool_ids": ["demo.pixel"], "text": "look"},
                         format="json")
    assert res.status_code == 200, res.content
    sent = sent_messages(fake_llm)
    assert "no vision" in tool_message_text(sent)
    assert not any(m.get("images") for m in sent)
    assert not any(isinstance(m["content"], list) for m in sent)


def tool_message_text(sent: list[dict]) -> str:
    tool = [m for m in sent if m["role"] == "tool"]
    assert len(tool) == 1
    return tool[0]["content"]
