"""/v1/tools/mcp, /v1/tools/call and MCP tools in the tool loop, with real MCP servers."""

from __future__ import annotations

import sys

import pytest
from rest_framework.test import APIClient

from registry.models import LLMModel, MCPServer, Tool
from tests.api.test_registries import assert_error
from tests.factories import LLMModelFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.inference.conftest import sent_messages
from tests.mcp_servers.fixtures import DEMO_STDIO, TIME_STDIO

pytestmark = pytest.mark.usefixtures("mcp")  # servers registered by a test are removed after it


def test_register_call_and_delete_the_time_server(staff_api: APIClient, alice_api: APIClient) -> None:
    res = staff_api.post("/v1/tools/mcp", {"mcpServers": {"time": TIME_STDIO}}, format="json")
    assert res.status_code == 200, res.content
    status = res.json()["servers"]["time"]
    assert status["status"] == "connected" and "time.get_current_time" in status["tool_ids"]
    tool = staff_api.get("/v1/tools/time.get_current_time").json()
    assert tool["tool_type"] == "mcp" and tool["server"] == "time" and tool["remote_name"] == "get_current_time"
    seen = alice_api.get("/v1/tools/time.get_current_time").json()  # the public view: no server details
    assert seen["name"] == "time_get_current_time" and seen["parameters"]["type"] == "object" and "server" not in seen
    assert alice_api.get("/v1/tools/mcp").status_code == 403  # servers' configs and errors are staff-only
    listed = staff_api.get("/v1/tools/mcp").json()["data"]
    assert listed[0]["name"] == "time" and listed[0]["status"] == "connected"

    res = alice_api.post(
        "/v1/tools/call", {"tool_id": "time.get_current_time", "arguments": {"timezone": "Europe/Paris"}}, format="json"
    )
    body = res.json()
    assert res.status_code == 200 and body["is_error"] is False and "Europe/Paris" in body["content"][0]["text"]
    assert body["duration_ms"] > 0
    res = alice_api.post(
        "/v1/tools/call", {"server": "time", "tool": "get_current_time", "arguments": {"timezone": "UTC"}}, format="json"
    )
    assert res.json()["is_error"] is False
    assert_error(
        alice_api.post("/v1/tools/call", {"tool_id": "time.get_current_time", "arguments": {"timezone": 5}}, format="json"),
        400,
        "invalid_arguments",
    )
    assert_error(alice_api.post("/v1/tools/call", {"server": "time", "tool": "nope"}, format="json"), 404, "tool_not_found")

    assert alice_api.delete("/v1/tools/mcp/time").status_code == 403
    assert staff_api.delete("/v1/tools/mcp/time").status_code == 204
    assert not Tool.objects.filter(tool_type="mcp").exists()
    assert_error(staff_api.delete("/v1/tools/mcp/time"), 404, "not_found")


def test_one_bad_server_does_not_stop_the_others(staff_api: APIClient) -> None:
    body = {"mcpServers": {"time": TIME_STDIO, "broken": {"command": sys.executable, "args": ["-m", "no_such_module_xyz"]}}}
    servers = staff_api.post("/v1/tools/mcp", body, format="json").json()["servers"]
    assert servers["time"]["status"] == "connected"
    assert servers["broken"]["status"] == "error" and servers["broken"]["error"]["code"] == "mcp_connect_failed"
    row = MCPServer.objects.get(name="broken")
    assert row.status == "error" and row.last_error


def test_malformed_configs_are_400_and_write_nothing(staff_api: APIClient, alice_api: APIClient) -> None:
    assert_error(staff_api.post("/v1/tools/mcp", {"mcpServers": {"x": {"args": []}}}, format="json"), 400, "invalid_mcp_config")
    assert_error(staff_api.post("/v1/tools/mcp", {"nope": 1}, format="json"), 400, "invalid_request")
    assert_error(staff_api.post("/v1/tools/mcp", {"mcpServers": {"bad name!": TIME_STDIO}}, format="json"), 400,
                 "invalid_mcp_config")
    assert_error(alice_api.post("/v1/tools/mcp", {"mcpServers": {"time": TIME_STDIO}}, format="json"), 403, "permission_denied")
    assert not MCPServer.objects.exists()


def test_reposting_replaces_the_config_and_resyncs(staff_api: APIClient) -> None:
    staff_api.post("/v1/tools/mcp", {"mcpServers": {"tools": TIME_STDIO}}, format="json")
    assert Tool.objects.filter(tool_id="tools.get_current_time").exists()
    servers = staff_api.post("/v1/tools/mcp", {"mcpServers": {"tools": DEMO_STDIO}}, format="json").json()["servers"]
    assert "tools.echo" in servers["tools"]["tool_ids"]
    assert not Tool.objects.filter(tool_id="tools.get_current_time").exists()


def test_secrets_in_mcp_configs_are_masked(staff_api: APIClient, alice_api: APIClient) -> None:
    config = {**TIME_STDIO, "env": {"API_TOKEN": "very-secret-token-123"}}
    staff_api.post("/v1/tools/mcp", {"mcpServers": {"time": config}}, format="json")
    for client in (staff_api, alice_api):
        assert b"very-secret-token-123" not in client.get("/v1/tools/mcp").content


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_http_transports_and_result_shapes(staff_api: APIClient, alice_api: APIClient, transport: str, request) -> None:
    url = request.getfixturevalue("demo_http_url" if transport == "http" else "demo_sse_url")
    servers = staff_api.post("/v1/tools/mcp", {"mcpServers": {"demo": {"url": url, "type": transport}}}, format="json").json()[
        "servers"
    ]
    assert servers["demo"]["status"] == "connected", servers

    def call(tool: str, arguments: dict) -> dict:
        return alice_api.post("/v1/tools/call", {"server": "demo", "tool": tool, "arguments": arguments}, format="json").json()

    assert call("echo", {"text": "hi"})["content"] == [{"type": "text", "text": "hi"}]
    image = call("pixel", {})["content"][0]
    assert image["type"] == "image" and image["mimeType"] == "image/png" and image["data"]
    weather = call("weather", {"city": "Oslo"})
    assert weather["structured"]["city"] == "Oslo"
    failed = call("fail", {"message": "date must be in the future"})
    assert failed["is_error"] is True and "date must be in the future" in failed["content"][0]["text"]


@pytest.fixture
def vision_model(request, db, fake_llm: FakeLLMServer) -> LLMModel:
    protocol = request.param
    return LLMModelFactory(model_id=f"v-{protocol}", api_protocol=protocol, fake=fake_llm, model_name="v",
                           supports_vision=True, timeout_s=10)


@pytest.mark.parametrize("vision_model", ["openai", "ollama"], indirect=True)
def test_mcp_tools_in_the_loop_and_images_reach_the_model(vision_model: LLMModel, fake_llm: FakeLLMServer, staff_api: APIClient,
                                                          alice_api: APIClient) -> None:
    staff_api.post("/v1/tools/mcp", {"mcpServers": {"time": TIME_STDIO, "demo": DEMO_STDIO}}, format="json")
    fake_llm.script([
        Reply(tool_calls=[("time_get_current_time", {"timezone": "UTC"}), ("demo_pixel", {})]),
        Reply(content="It is now, and I saw a pixel."),
    ])
    body = alice_api.post("/v1/infer", {"model_id": vision_model.model_id, "tool_ids": ["time.get_current_time", "demo.pixel"],
                                         "text": "time and picture?"}, format="json").json()
    assert body["content"] == "It is now, and I saw a pixel."
    results = [m for m in body["messages"] if m["role"] == "tool"]
    assert [r["tool_id"] for r in results] == ["time.get_current_time", "demo.pixel"]
    assert all(not r["is_error"] for r in results)
    sent = sent_messages(fake_llm)
    if vision_model.api_protocol == "openai":
        # tool messages are text-only (docs/protocols.md A-11): the image follows in a user message
        image_parts = [p for m in sent if m["role"] == "user" and isinstance(m["content"], list) for p in m["content"]
                       if p.get("type") == "image_url"]
        assert image_parts and image_parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
        assert all(isinstance(m["content"], str) for m in sent if m["role"] == "tool")
    else:
        tool_msgs = [m for m in sent if m["role"] == "tool"]
        assert any(m.get("images") for m in tool_msgs)
        assert {m["tool_name"] for m in tool_msgs} == {"time_get_current_time", "demo_pixel"}
