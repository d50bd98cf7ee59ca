"""Function tools defined at runtime: dotted-path callables and HTTP endpoints, via /v1/tools/call."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient

from tests.api.test_registries import assert_error
from tests.factories import LLMModelFactory, ToolFactory
from tests.fakes.fake_llm import FakeLLMServer
from tests.mcp_servers import free_port


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Hook.received.append(body)
        if self.path == "/fail":
            self._send(500, b"upstream exploded")
        elif self.path == "/mcp-shaped":
            self._send(200, json.dumps({"content": [{"type": "text", "text": "shaped"}], "is_error": False}).encode())
        else:
            self._send(200, json.dumps({"sum": sum(body["arguments"].values())}).encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hook_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_endpoint_tools(staff_api: APIClient, alice_api: APIClient, hook_url: str, monkeypatch) -> None:
    monkeypatch.setenv("HOOK_BASE", hook_url)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}
    for tool_id, path in (("sum", "/sum"), ("fail", "/fail"), ("shaped", "/mcp-shaped")):
        res = staff_api.post("/v1/tools", {"tool_id": tool_id, "name": tool_id, "endpoint": "${HOOK_BASE}" + path,
                                           "parameters": schema}, format="json")
        assert res.status_code == 201, res.content
    body = alice_api.post("/v1/tools/call", {"tool_id": "sum", "arguments": {"a": 2, "b": 3}}, format="json").json()
    assert body["is_error"] is False and body["structured"] == {"sum": 5} and Hook.received[-1] == {"arguments": {"a": 2, "b": 3}}
    failed = alice_api.post("/v1/tools/call", {"tool_id": "fail", "arguments": {"a": 1, "b": 1}}, format="json").json()
    assert failed["is_error"] is True and "500" in failed["content"][0]["text"]
    shaped = alice_api.post("/v1/tools/call", {"tool_id": "shaped", "arguments": {"a": 1, "b": 1}}, format="json").json()
    assert shaped["content"] == [{"type": "text", "text": "shaped"}]
    assert_error(
        alice_api.post("/v1/tools/call", {"tool_id": "sum", "arguments": {"a": "x"}}, format="json"), 400, "invalid_arguments"
    )


def test_unreachable_endpoint_is_an_error_result(staff_api: APIClient, alice_api: APIClient) -> None:
    port = free_port()  # nothing listens there
    staff_api.post("/v1/tools", {"tool_id": "gone", "name": "gone", "endpoint": f"http://127.0.0.1:{port}/x"}, format="json")
    body = alice_api.post("/v1/tools/call", {"tool_id": "gone"}, format="json").json()
    assert body["is_error"] is True and "could not be reached" in body["content"][0]["text"]


def test_callable_tools_raising_and_hanging(staff_api: APIClient, alice_api: APIClient) -> None:
    staff_api.post("/v1/tools", {"tool_id": "boom", "name": "boom", "callable": "tests.tool_fns:explode"}, format="json")
    staff_api.post("/v1/tools", {"tool_id": "slow", "name": "slow", "callable": "tests.tool_fns:block", "timeout_s": 0.2,
                                 "parameters": {"type": "object", "properties": {"seconds": {"type": "number"}}}}, format="json")
    boom = alice_api.post("/v1/tools/call", {"tool_id": "boom", "arguments": {"reason": "nope"}}, format="json").json()
    assert boom["is_error"] is True and "RuntimeError: nope" in boom["content"][0]["text"]
    slow = alice_api.post("/v1/tools/call", {"tool_id": "slow", "arguments": {"seconds": 1}}, format="json").json()
    assert slow["is_error"] is True and "timed out" in slow["content"][0]["text"]


def test_model_api_keys_resolve_from_the_env_store(staff_api: APIClient, alice_api: APIClient, fake_llm: FakeLLMServer) -> None:
    LLMModelFactory(model_id="keyed", fake=fake_llm, model_name="m", api_key="${KEYED_MODEL_TOKEN}")
    staff_api.post("/v1/env", {"key": "KEYED_MODEL_TOKEN", "value": "sk-from-env-store"}, format="json")
    alice_api.post("/v1/infer", {"model_id": "keyed", "text": "hi"}, format="json")
    assert fake_llm.last_request().headers["authorization"] == "Bearer sk-from-env-store"
    staff_api.delete("/v1/env/KEYED_MODEL_TOKEN")


def test_unknown_and_disabled_tools_are_404(staff_api: APIClient, alice_api: APIClient) -> None:
    ToolFactory(tool_id="off", callable="tests.tool_fns:add", enabled=False)
    assert_error(alice_api.post("/v1/tools/call", {"tool_id": "off"}, format="json"), 404, "tool_not_found")
    assert_error(alice_api.post("/v1/tools/call", {"tool_id": "nope"}, format="json"), 404, "tool_not_found")
    assert_error(alice_api.post("/v1/tools/call", {"arguments": {}}, format="json"), 400, "validation_error")
