"""The live AGENTSITE_* settings (issue 18): a value stored through /v1/env changes the server's
setting from the next request on; a bad one is refused; deleting it brings the start-up value back."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from registry.env_store import env_set
from registry.models import EnvVar, LLMModel
from sessions.models import Session
from tests.factories import ADD_PARAMS, LLMModelFactory, ToolFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.mcp_servers.fixtures import DEMO_STDIO

ROUNDS = "AGENTSITE_MAX_TOOL_ROUNDS_LIMIT"


@pytest.fixture
def model(db, fake_llm: FakeLLMServer) -> LLMModel:
    return LLMModelFactory(model_id="live", fake=fake_llm, timeout_s=5)


def infer(client: APIClient, **body: object) -> tuple[int, dict]:
    res = client.post("/v1/infer", {"model_id": "live", "text": "hi", **body}, format="json")
    return res.status_code, res.json()


def store(client: APIClient, key: str, value: str) -> int:
    return client.post("/v1/env", {"key": key, "value": value, "is_secret": False}, format="json").status_code


def test_a_tool_round_limit_stored_through_v1_env_applies_to_the_next_request(
    model: LLMModel, fake_llm: FakeLLMServer, staff_api: APIClient, alice_api: APIClient
) -> None:
    fake_llm.script("ok")
    assert infer(alice_api, max_tool_rounds=20)[0] == 200

    assert store(staff_api, ROUNDS, "3") == 201
    status, body = infer(alice_api, max_tool_rounds=4)
    assert status == 400 and body["error"]["code"] == "validation_error"
    assert "at most 3" in body["error"]["message"]
    fake_llm.script("ok")
    assert infer(alice_api, max_tool_rounds=3)[0] == 200

    assert staff_api.delete(f"/v1/env/{ROUNDS}").status_code == 204
    fake_llm.script("ok")
    assert infer(alice_api, max_tool_rounds=20)[0] == 200


def test_the_default_tool_rounds_follow_a_lower_live_limit(
    model: LLMModel, fake_llm: FakeLLMServer, staff_api: APIClient, alice_api: APIClient
) -> None:
    ToolFactory(tool_id="math.add", parameters=ADD_PARAMS)
    assert store(staff_api, ROUNDS, "1") == 201
    fake_llm.script([Reply(tool_calls=[("add", {"a": i, "b": 1})]) for i in range(3)] + [Reply(content="Enough.")])
    status, body = infer(alice_api, tool_ids=["math.add"])  # no max_tool_rounds: the default, within the limit
    assert status == 200 and body["finish_reason"] == "max_tool_rounds" and body["tool_rounds"] == 1


def test_a_tool_timeout_stored_through_v1_env_applies_to_the_next_call(staff_api: APIClient, alice_api: APIClient) -> None:
    ToolFactory(tool_id="slow_echo", parameters={"type": "object", "properties": {"text": {"type": "string"},
                                                                                "seconds": {"type": "number"}}})
    call = {"tool_id": "slow_echo", "arguments": {"text": "hi", "seconds": 0.5}}
    assert alice_api.post("/v1/tools/call", call, format="json").json()["is_error"] is False

    assert store(staff_api, "AGENTSITE_TOOL_TIMEOUT_S", "0.05") == 201
    result = alice_api.post("/v1/tools/call", call, format="json").json()
    assert result["is_error"] is True and "timed out after 0.05 s" in result["content"][0]["text"]


@pytest.mark.parametrize(
    "key,value",
    [(ROUNDS, "lots"), (ROUNDS, "2.5"), (ROUNDS, "-1"), ("AGENTSITE_TOOL_TIMEOUT_S", "0"),
     ("AGENTSITE_TOOL_TIMEOUT_S", "nan"), ("AGENTSITE_SSE_PING_S", "1e9"), ("AGENTSITE_MEMORY_EXTRACTION", "maybe"),
     ("AGENTSITE_FETCH_MAX_BYTES", "0")],
)
def test_a_live_setting_refuses_a_value_it_cannot_take(staff_api: APIClient, key: str, value: str) -> None:
    res = staff_api.post("/v1/env", {"key": key, "value": value}, format="json")
    assert res.status_code == 400 and res.json()["error"]["code"] == "validation_error"
    assert key in res.json()["error"]["detail"]["value"][0]
    assert not EnvVar.objects.filter(key=key).exists()


def test_a_restart_only_setting_is_stored_as_a_plain_value(staff_api: APIClient) -> None:
    assert store(staff_api, "AGENTSITE_MAX_BODY_MB", "not a number") == 201  # serves ${VAR} references only


def test_a_bad_value_stored_without_the_api_is_ignored(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient, settings
) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "MAX_TOOL_ROUNDS_LIMIT": 5}
    env_set(key=ROUNDS, value="lots", is_secret=False)  # the service itself does not check (a raw write, an import)
    status, body = infer(alice_api, max_tool_rounds=6)
    assert status == 400 and "at most 5" in body["error"]["message"]
    fake_llm.script("ok")
    assert infer(alice_api, max_tool_rounds=5)[0] == 200


def test_memory_extraction_switched_on_through_v1_env_runs_after_the_next_turn(
    transactional_db, fake_llm: FakeLLMServer, staff_api: APIClient, alice_api: APIClient
) -> None:
    LLMModelFactory(model_id="live", fake=fake_llm)  # off at start-up in the tests (conftest)

    def turn(text: str, *replies: str) -> str:
        fake_llm.script([Reply(content=r) for r in replies])
        res = alice_api.post("/v1/infer", {"model_id": "live", "session_id": "new", "text": text}, format="json")
        return res.json()["session_id"]

    turn("I run Arch Linux.", "Noted.")
    time.sleep(0.5)  # an extraction would have been asked for by now
    assert len([r for r in fake_llm.requests if r.path in ("/v1/chat/completions", "/api/chat")]) == 1

    assert store(staff_api, "AGENTSITE_MEMORY_EXTRACTION", "on") == 201
    sid = turn("I run Arch Linux.", "Noted.", '["The user runs Arch Linux."]')  # the turn, then the extraction
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not Session.objects.get(pk=sid).memory:
        time.sleep(0.05)
    assert Session.objects.get(pk=sid).memory == ["The user runs Arch Linux."]


def test_an_mcp_call_timeout_stored_through_v1_env_applies_to_the_next_call(staff_api: APIClient, alice_api: APIClient) -> None:
    res = staff_api.post("/v1/tools/mcp", {"mcpServers": {"demo": DEMO_STDIO}}, format="json")
    assert res.json()["servers"]["demo"]["status"] == "connected", res.content
    call = {"tool_id": "demo.sleep", "arguments": {"seconds": 0.6}}
    assert alice_api.post("/v1/tools/call", call, format="json").json()["is_error"] is False

    assert store(staff_api, "AGENTSITE_MCP_CALL_TIMEOUT_S", "0.2") == 201
    result = alice_api.post("/v1/tools/call", call, format="json").json()
    assert result["is_error"] is True and "timed out after 0.2 s" in result["content"][0]["text"]
    staff_api.delete("/v1/tools/mcp/demo")
