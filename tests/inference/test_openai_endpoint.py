"""/openai/v1 in-process: the mapping onto one run (mixed tool rounds, access, error shapes)."""

from __future__ import annotations

import json

from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from agents.models import Agent
from tests.factories import ADD_PARAMS, LLMModelFactory, ToolFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.sse import streamed_body

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}


def _post(client: APIClient, body: dict, **headers: str):
    return client.post("/openai/v1/chat/completions", json.dumps(body), content_type="application/json", **headers)


def test_a_round_with_a_server_and_a_client_call_runs_ours_then_hands_theirs_back(
    db, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    LLMModelFactory(model_id="m", fake=fake_llm, model_name="m", timeout_s=5)
    ToolFactory(tool_id="math.add", parameters=ADD_PARAMS)
    Agent.objects.create(name="mixed", model_id="m", tool_ids=["math.add"])
    fake_llm.script([Reply(tool_calls=[("add", {"a": 1, "b": 1}, "c_add"), ("get_weather", {}, "c_w")])], model="m")
    res = _post(alice_api, {"model": "mixed", "messages": [{"role": "user", "content": "go"}], "tools": [WEATHER]})
    assert res.status_code == 200, res.content
    choice = res.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert [c["id"] for c in choice["message"]["tool_calls"]] == ["c_w"]  # ours ran; theirs is handed back
    assert len(fake_llm.requests) == 1


def test_errors_and_listing_follow_the_callers_access(db, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    LLMModelFactory(model_id="m", fake=fake_llm, model_name="m")
    secret = LLMModelFactory(model_id="secret-model", fake=fake_llm, model_name="s")
    secret.allowed_groups.add(Group.objects.create(name="insiders"))
    Agent.objects.create(name="open-agent", model_id="m")
    listing = alice_api.get("/openai/v1/models").json()
    assert listing["object"] == "list" and [m["id"] for m in listing["data"]] == ["open-agent", "m"]
    res = _post(alice_api, {"model": "secret-model", "messages": [{"role": "user", "content": "x"}]})
    assert res.status_code == 404 and res.json()["error"]["code"] == "model_not_found"
    assert set(res.json()["error"]) == {"message", "type", "param", "code"}
    res = _post(alice_api, {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"})
    assert res.status_code == 400 and res.json()["error"]["param"] == "temperature"
    res = _post(alice_api, {"model": "m", "messages": [{"role": "user", "content": "x"}], "functions": []})
    assert res.status_code == 400 and res.json()["error"]["param"] == "functions"
    assert APIClient().get("/openai/v1/models").status_code == 401
    res = alice_api.get("/openai/v1/embeddings")
    assert res.status_code == 404 and res.json()["error"]["type"] == "not_found_error"


def test_a_new_session_comes_back_in_the_header_and_streams_end_with_done(db, fake_llm: FakeLLMServer,
                                                                          alice_api: APIClient) -> None:
    LLMModelFactory(model_id="m", fake=fake_llm, model_name="m")
    fake_llm.script([Reply(content="hello", chunk_size=2)], model="m")
    res = _post(alice_api, {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]},
                HTTP_X_AGENTSITE_SESSION="new")
    assert res.status_code == 200 and res["X-Agentsite-Session"]
    lines = [line for line in streamed_body(res).decode().split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "hello"


def test_a_secret_the_model_echoes_is_masked_in_completions_and_chunks(db, fake_llm: FakeLLMServer, staff_api: APIClient,
                                                                        alice_api: APIClient) -> None:
    secret = "env-SECRETVALUE-0a1b2c3d4e"
    assert staff_api.post("/v1/env", {"key": "LEAKY", "value": secret, "is_secret": True}, format="json").status_code == 201
    LLMModelFactory(model_id="m", fake=fake_llm, model_name="m")
    fake_llm.script([Reply(content=f"the key is {secret}"), Reply(content=f"again {secret}", chunk_size=100)], model="m")
    whole = _post(alice_api, {"model": "m", "messages": [{"role": "user", "content": "x"}]})
    streamed = _post(alice_api, {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    for text in (whole.content.decode(), streamed_body(streamed).decode()):
        assert secret not in text and "SECRETVALUE" not in text
    assert whole.json()["choices"][0]["message"]["content"].startswith("the key is ")
