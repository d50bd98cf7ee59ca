"""Agents through HTTP: /v1/agents, "agent" in /v1/infer(/stream), and agents that use agents."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from agents.models import Agent
from tests.api.test_registries import assert_error
from tests.factories import ADD_PARAMS, LLMModelFactory, ToolFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.inference.conftest import sent_messages, stream


@pytest.fixture
def models(db, fake_llm: FakeLLMServer) -> None:
    # Two models with their own scripts on the fake server: the lead and the helper.
    LLMModelFactory(model_id="lead-model", fake=fake_llm, model_name="lead", timeout_s=5)
    LLMModelFactory(model_id="helper-model", fake=fake_llm, model_name="helper", timeout_s=5)


def _agent(staff_api: APIClient, **fields) -> dict:
    res = staff_api.post("/v1/agents", {"model_id": "lead-model", **fields}, format="json")
    assert res.status_code == 201, res.content
    return res.json()


def test_staff_create_read_update_and_delete_an_agent(models, staff_api: APIClient) -> None:
    body = _agent(staff_api, name="researcher", description="Finds things.", system_prompt="Be brief.",
                  options={"temperature": 0.1}, max_tool_rounds=4)
    assert body["name"] == "researcher" and body["allowed_groups"] == [] and body["think"] is None
    res = staff_api.patch("/v1/agents/researcher", {"description": "Finds more."}, format="json")
    assert res.status_code == 200 and res.json()["description"] == "Finds more."
    assert staff_api.get("/v1/agents").json()["data"][0]["name"] == "researcher"
    assert_error(staff_api.patch("/v1/agents/researcher", {"name": "other"}, format="json"), 400, "validation_error")
    assert staff_api.delete("/v1/agents/researcher").status_code == 204
    assert_error(staff_api.get("/v1/agents/researcher"), 404, "agent_not_found")


def test_bad_agents_are_refused_with_clear_errors(models, staff_api: APIClient) -> None:
    assert_error(staff_api.post("/v1/agents", {"name": "bad name!", "model_id": "lead-model"}, format="json"),
                 400, "validation_error")
    assert_error(staff_api.post("/v1/agents", {"name": "x", "model_id": "nope"}, format="json"), 400, "validation_error")
    assert_error(staff_api.post("/v1/agents", {"name": "x", "model_id": "lead-model", "tool_ids": ["no.such"]},
                                format="json"), 400, "validation_error")
    assert_error(staff_api.post("/v1/agents", {"name": "x", "model_id": "lead-model", "allowed_groups": ["ghosts"]},
                                format="json"), 400, "validation_error")
    assert_error(staff_api.post("/v1/agents", {"name": "x", "model_id": "lead-model", "bogus": 1}, format="json"),
                 400, "validation_error")
    assert not Agent.objects.exists()


def test_agents_and_models_share_one_namespace(models, staff_api: APIClient, fake_llm: FakeLLMServer) -> None:
    assert_error(staff_api.post("/v1/agents", {"name": "helper-model", "model_id": "lead-model"}, format="json"),
                 409, "conflict")
    _agent(staff_api, name="writer")
    res = staff_api.post("/v1/models", {"model_id": "writer", "api_protocol": "openai", "api_base": fake_llm.openai_base,
                                         "model_name": "x"}, format="json")
    assert_error(res, 409, "conflict")
    assert_error(staff_api.post("/v1/agents", {"name": "writer", "model_id": "lead-model"}, format="json"), 409, "conflict")


def test_a_cycle_is_refused_when_an_agent_is_saved(models, staff_api: APIClient) -> None:
    _agent(staff_api, name="a")
    _agent(staff_api, name="b", tool_ids=["agent.a"])
    _agent(staff_api, name="c", tool_ids=["agent.b"])
    res = staff_api.patch("/v1/agents/a", {"tool_ids": ["agent.c"]}, format="json")
    body = assert_error(res, 400, "agent_cycle")
    assert body["detail"]["cycle"] == ["a", "c", "b", "a"]
    assert_error(staff_api.post("/v1/agents", {"name": "self", "model_id": "lead-model", "tool_ids": ["agent.self"]},
                                format="json"), 400, "agent_cycle")
    assert Agent.objects.get(name="a").tool_ids == []
    # An agent another one uses cannot be deleted from under it.
    assert_error(staff_api.delete("/v1/agents/a"), 409, "conflict")


def test_the_agent_fields_are_the_defaults_of_a_run(models, fake_llm: FakeLLMServer, staff_api: APIClient,
                                                    alice_api: APIClient) -> None:
    _agent(staff_api, name="greeter", system_prompt="You greet {{who}}.", options={"temperature": 0.3})
    fake_llm.script([Reply(content="Hello, team!")], model="lead")
    res = alice_api.post("/v1/infer", {"agent": "greeter", "text": "Hi", "arguments": {"who": "the team"}}, format="json")
    assert res.status_code == 200, res.content
    body = res.json()
    assert body["content"] == "Hello, team!" and body["model_id"] == "lead-model"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]  # the system prompt is not echoed
    assert sent_messages(fake_llm) == [{"role": "system", "content": "You greet the team."}, {"role": "user", "content": "Hi"}]
    assert fake_llm.last_request().json["temperature"] == 0.3
    # A field given in the request wins over the agent's.
    fake_llm.script([Reply(content="Hi!")], model="helper")
    res = alice_api.post("/v1/infer", {"agent": "greeter", "model_id": "helper-model", "text": "Hi",
                                       "arguments": {"who": "you"}, "options": {"temperature": 0.9}}, format="json")
    assert res.status_code == 200 and res.json()["model_id"] == "helper-model"
    assert fake_llm.last_request().json["temperature"] == 0.9
    assert_error(alice_api.post("/v1/infer", {"agent": "greeter", "text": "Hi"}, format="json"), 400,
                 "template_variables_missing")
    assert_error(alice_api.post("/v1/infer", {"agent": "nobody", "text": "Hi"}, format="json"), 404, "agent_not_found")
    assert_error(alice_api.post("/v1/infer", {"text": "Hi"}, format="json"), 400, "validation_error")


def test_an_agent_outside_the_callers_groups_does_not_exist_for_them(models, fake_llm: FakeLLMServer, staff_api: APIClient,
                                                                    alice_api: APIClient) -> None:
    Group.objects.create(name="research")
    _agent(staff_api, name="secret", system_prompt="Top secret prompt.", allowed_groups=["research"])
    _agent(staff_api, name="open", tool_ids=["agent.secret"])
    assert alice_api.get("/v1/agents").json()["data"] == [
        {"name": "open", "description": "", "model_id": "lead-model", "tool_ids": ["agent.secret"], "enabled": True}
    ]
    assert_error(alice_api.get("/v1/agents/secret"), 404, "agent_not_found")
    assert_error(alice_api.post("/v1/infer", {"agent": "secret", "text": "Hi"}, format="json"), 404, "agent_not_found")
    # Through another agent's tools: the same "unknown tool" as any id the caller may not use.
    assert_error(alice_api.post("/v1/infer", {"agent": "open", "text": "Hi"}, format="json"), 404, "tool_not_found")
    assert_error(alice_api.post("/v1/agents", {"name": "mine", "model_id": "lead-model"}, format="json"), 403,
                 "permission_denied")


def test_an_agent_delegates_to_a_second_agent_with_other_tools_while_streaming(
    models, fake_llm: FakeLLMServer, staff_api: APIClient, alice_api: APIClient
) -> None:
    ToolFactory(tool_id="math.add", description="Add two integers.", parameters=ADD_PARAMS)
    _agent(staff_api, name="calculator", model_id="helper-model", tool_ids=["math.add"], system_prompt="You add.")
    _agent(staff_api, name="lead", tool_ids=["agent.calculator"], system_prompt="Delegate sums.")
    fake_llm.script([
        Reply(tool_calls=[("agent_calculator", {"input": "What is 2 + 3?"}, "call_lead")]),
        Reply(content="The calculator says 5."),
    ], model="lead")
    fake_llm.script([
        Reply(tool_calls=[("add", {"a": 2, "b": 3}, "call_add")]),
        Reply(content="2 + 3 = 5", chunk_size=3),
    ], model="helper")

    events = stream(alice_api, {"agent": "lead", "text": "Add 2 and 3, please."})

    done = events[-1][1]
    assert events[-1][0] == "done" and done["content"] == "The calculator says 5."
    lead_call = next(d for e, d in events if e == "tool_call")
    assert lead_call["tool_id"] == "agent.calculator" and lead_call["arguments"] == {"input": "What is 2 + 3?"}
    progress = [d for e, d in events if e == "tool_progress"]
    assert progress and all(p["id"] == "call_lead" and p["agent"] == "calculator" for p in progress)
    # The second agent's own tool ran inside the sub-run, visible as it happened.
    sub_result = next(p["data"] for p in progress if p["event"] == "tool_result")
    assert sub_result["tool_id"] == "math.add" and sub_result["content"][0]["text"] == "5"
    assert "".join(p["data"].get("content", "") for p in progress if p["event"] == "delta") == "2 + 3 = 5"
    lead_result = next(d for e, d in events if e == "tool_result")
    assert lead_result["tool_id"] == "agent.calculator" and lead_result["content"][0]["text"] == "2 + 3 = 5"
    # The helper got its own prompt and tools, not the lead's.
    helper_first = next(r for r in fake_llm.requests if r.json["model"] == "helper")
    assert helper_first.json["messages"][0] == {"role": "system", "content": "You add."}
    assert [t["function"]["name"] for t in helper_first.json["tools"]] == ["add"]


def test_sub_runs_stop_at_the_depth_limit(models, fake_llm: FakeLLMServer, staff_api: APIClient, alice_api: APIClient,
                                          settings) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "AGENT_MAX_DEPTH": 1}
    _agent(staff_api, name="inner", model_id="helper-model")
    _agent(staff_api, name="middle", model_id="helper-model", tool_ids=["agent.inner"])
    _agent(staff_api, name="outer", tool_ids=["agent.middle"])
    fake_llm.script([Reply(tool_calls=[("agent_middle", {"input": "go"}, "c1")]), Reply(content="done")], model="lead")
    fake_llm.script([Reply(tool_calls=[("agent_inner", {"input": "go"}, "c2")]), Reply(content="middle done")],
                    model="helper")
    res = alice_api.post("/v1/infer", {"agent": "outer", "text": "Go"}, format="json")
    assert res.status_code == 200, res.content
    inner_result = [m for m in fake_llm.requests if m.json["model"] == "helper"][-1].json["messages"][-1]
    assert inner_result["role"] == "tool" and "at most 1 deep" in inner_result["content"]


def test_the_chat_offers_the_agents_a_user_may_run_next_to_the_models(models, staff_api: APIClient, alice) -> None:
    from django.test import Client

    Group.objects.create(name="research")
    _agent(staff_api, name="helper", description="Helps.")
    _agent(staff_api, name="hidden", allowed_groups=["research"])
    client = Client()
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert '<optgroup label="Agents">' in page and 'data-agent="helper"' in page
    assert 'data-agent="hidden"' not in page


def test_a_direct_call_of_an_agent_tool_runs_the_agent_for_the_caller(models, fake_llm: FakeLLMServer, staff_api: APIClient,
                                                                     alice_api: APIClient) -> None:
    _agent(staff_api, name="echo", model_id="helper-model")
    fake_llm.script([Reply(content="echoed")], model="helper")
    res = alice_api.post("/v1/tools/call", {"tool_id": "agent.echo", "arguments": {"input": "hi"}}, format="json")
    assert res.status_code == 200, res.content
    assert res.json()["is_error"] is False and res.json()["content"] == [{"type": "text", "text": "echoed"}]
    assert_error(alice_api.post("/v1/tools/call", {"tool_id": "agent.nobody", "arguments": {"input": "hi"}}, format="json"),
                 404, "tool_not_found")


def test_the_admin_checks_agents_like_the_api_and_offers_a_try_it_box(models, staff_api: APIClient, admin_client) -> None:
    _agent(staff_api, name="a")
    form = {"name": "b", "description": "", "model_id": "lead-model", "tool_ids": '["agent.b"]', "system_prompt": "",
            "prompt_template": "", "options": "{}", "max_tool_rounds": "10", "think": "", "enabled": "on"}
    res = admin_client.post("/admin/agents/agent/add/", form)
    assert res.status_code == 200 and "would reach itself" in res.content.decode()
    assert not Agent.objects.filter(name="b").exists()
    res = admin_client.post("/admin/agents/agent/add/", {**form, "tool_ids": '["agent.a"]'})
    assert res.status_code == 302 and Agent.objects.get(name="b").tool_ids == ["agent.a"]
    page = admin_client.get(f"/admin/agents/agent/{Agent.objects.get(name='a').pk}/change/").content.decode()
    assert 'id="agent-try-run"' in page and 'data-agent="a"' in page and "agent_try.js" in page


def test_writing_agents_takes_the_agent_permissions(models, staff_api: APIClient) -> None:
    from tests.factories import StaffFactory, bearer

    bare = APIClient()
    bare.credentials(HTTP_AUTHORIZATION=bearer(StaffFactory(username="bare-staff", rights=()))["Authorization"])
    assert_error(bare.post("/v1/agents", {"name": "x", "model_id": "lead-model"}, format="json"), 403, "permission_denied")
    assert bare.get("/v1/agents").status_code == 200
