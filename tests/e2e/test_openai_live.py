"""/openai/v1 through the official ``openai`` SDK against a live server (sync, async, streaming,
server-side tools inside one completion, client tools handed back, errors, sessions)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from agents.models import Agent
from sessions.models import Session
from tests.e2e.conftest import LiveServer, eventually
from tests.factories import ADD_PARAMS, LLMModelFactory, ToolFactory, UserFactory, api_key
from tests.fakes.fake_llm import FakeLLMServer, Reply
from usage.models import UsageRecord

pytestmark = pytest.mark.e2e

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}


@pytest.fixture
def key(transactional_db, fake_llm: FakeLLMServer) -> str:
    LLMModelFactory(model_id="m", fake=fake_llm, model_name="m", timeout_s=10)
    ToolFactory(tool_id="math.add", description="Add two integers.", parameters=ADD_PARAMS)
    Agent.objects.create(name="adder", model_id="m", tool_ids=["math.add"], system_prompt="You add.")
    return api_key(UserFactory(username="sdk-user"))[1]


def _client(server: LiveServer, key: str) -> OpenAI:
    return OpenAI(base_url=server.url + "/openai/v1", api_key=key, max_retries=0, timeout=30)


def test_sync_completion_runs_the_agents_tools_inside_one_completion(live_server_proc: LiveServer, key: str,
                                                                     fake_llm: FakeLLMServer) -> None:
    fake_llm.script([Reply(tool_calls=[("add", {"a": 2, "b": 40})]), Reply(content="It is 42.", thinking="Added.")],
                    model="m")
    answer = _client(live_server_proc, key).chat.completions.create(
        model="adder", messages=[{"role": "user", "content": "2 + 40?"}], temperature=0.2)
    assert answer.object == "chat.completion" and answer.model == "adder"
    choice = answer.choices[0]
    assert choice.message.content == "It is 42." and choice.finish_reason == "stop" and not choice.message.tool_calls
    assert choice.message.model_extra["reasoning_content"] == "Added."
    assert answer.usage is not None and answer.usage.total_tokens > 0
    sent = fake_llm.requests[-1].json
    assert sent["temperature"] == 0.2 and sent["messages"][0] == {"role": "system", "content": "You add."}
    assert sent["messages"][-1]["role"] == "tool" and "42" in str(sent["messages"][-1]["content"])
    # Usage is recorded as on /v1, with the agent named (just after the answer: a stateless run's
    # record is written behind it).
    assert eventually(lambda: UsageRecord.objects.filter(agent="adder").count() == 2)


def test_async_client_and_the_model_list(live_server_proc: LiveServer, key: str, fake_llm: FakeLLMServer) -> None:
    fake_llm.script([Reply(content="hello")], model="m")

    async def go() -> tuple[str | None, list[str]]:
        client = AsyncOpenAI(base_url=live_server_proc.url + "/openai/v1", api_key=key, max_retries=0)
        answer = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        ids = [m.id async for m in client.models.list()]
        await client.close()
        return answer.choices[0].message.content, ids

    content, ids = asyncio.run(go())
    assert content == "hello" and ids == ["adder", "m"]


def test_streaming_gives_reasoning_content_deltas_usage_and_done(live_server_proc: LiveServer, key: str,
                                                                fake_llm: FakeLLMServer) -> None:
    fake_llm.script([Reply(content="The answer is 42.", thinking="Thinking hard.", chunk_size=3)], model="m")
    stream = _client(live_server_proc, key).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "?"}], stream=True, stream_options={"include_usage": True},
        reasoning_effort="high")
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    thinking = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices)
    assert text == "The answer is 42." and thinking == "Thinking hard."
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    with httpx.stream("POST", live_server_proc.url + "/openai/v1/chat/completions",
                      json={"model": "m", "messages": [{"role": "user", "content": "?"}], "stream": True},
                      headers={"Authorization": f"Bearer {key}"}) as raw:
        fake_llm.script([Reply(content="x")], model="m")
        lines = [line for line in raw.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_client_tools_are_handed_back_and_the_client_continues(live_server_proc: LiveServer, key: str,
                                                               fake_llm: FakeLLMServer) -> None:
    client = _client(live_server_proc, key)
    fake_llm.script([Reply(tool_calls=[("get_weather", {"city": "Paris"}, "call_w")])], model="m")
    messages: list = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model="adder", messages=messages, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.id == "call_w" and call.function.name == "get_weather" and call.function.arguments == '{"city": "Paris"}'
    offered = [t["function"]["name"] for t in fake_llm.requests[-1].json["tools"]]
    assert offered == ["get_weather", "add"]  # the client's tool and the agent's own

    fake_llm.script([Reply(content="Sunny in Paris.")], model="m")
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": "call_w", "content": "sunny, 24 C"}]
    second = client.chat.completions.create(model="adder", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "Sunny in Paris." and second.choices[0].finish_reason == "stop"
    sent = fake_llm.requests[-1].json["messages"]
    assert sent[-1]["role"] == "tool" and sent[-1]["tool_call_id"] == "call_w"

    # Streaming: the client tool's call arrives as delta.tool_calls, then finish_reason tool_calls.
    fake_llm.script([Reply(tool_calls=[("get_weather", {"city": "Oslo"}, "call_o")])], model="m")
    chunks = list(client.chat.completions.create(model="adder", messages=messages[:1], tools=[WEATHER], stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or ())]
    assert [(d.index, d.id, d.function.name, d.function.arguments) for d in deltas] == [
        (0, "call_o", "get_weather", '{"city": "Oslo"}')]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_errors_come_in_openais_shape(live_server_proc: LiveServer, key: str) -> None:
    with pytest.raises(openai.AuthenticationError) as exc:
        _client(live_server_proc, "ask_wrong").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 401 and set(exc.value.body) == {"message", "type", "param", "code"}
    client = _client(live_server_proc, key)
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert exc.value.code == "model_not_found" and exc.value.type == "not_found_error"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], n=2)
    assert exc.value.param == "n"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://127.0.0.1/cat.png"}}]}])
    assert "data: URI" in exc.value.message
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="m", messages=[{"role": "wizard", "content": "x"}])  # type: ignore[misc]
    assert exc.value.type == "invalid_request_error"



def test_an_agent_saved_in_another_process_is_run_by_its_name_and_no_longer_once_disabled(
    live_server_proc: LiveServer, key: str, fake_llm: FakeLLMServer
) -> None:
    # Runs warm the server's registry snapshot, the agents' names with it (the key's first use
    # drops it once); a save made here must reach it before the next request.
    fake_llm.script([Reply(content="plain")] * 3 + [Reply(content="as the agent")], model="m")
    client = _client(live_server_proc, key)
    ask: Any = [{"role": "user", "content": "x"}]
    for _ in range(3):
        assert client.chat.completions.create(model="m", messages=ask).choices[0].message.content == "plain"
    agent = Agent.objects.create(name="later", model_id="m", system_prompt="You came later.")
    answer = client.chat.completions.create(model="later", messages=ask)
    assert answer.model == "later" and answer.choices[0].message.content == "as the agent"
    assert fake_llm.requests[-1].json["messages"][0] == {"role": "system", "content": "You came later."}
    agent.enabled = False
    agent.save()
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="later", messages=ask)
    assert exc.value.code == "model_not_found"

def test_a_session_header_keeps_the_conversation(live_server_proc: LiveServer, key: str, fake_llm: FakeLLMServer) -> None:
    client = _client(live_server_proc, key)
    fake_llm.script([Reply(content="Hi Ada.")], model="m")
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "I am Ada."}], extra_headers={"X-Agentsite-Session": "new"})
    session_id = raw.headers["X-Agentsite-Session"]
    assert raw.parse().choices[0].message.content == "Hi Ada."
    fake_llm.script([Reply(content="Ada.")], model="m")
    client.chat.completions.create(
        model="m", extra_headers={"X-Agentsite-Session": session_id},
        messages=[{"role": "user", "content": "I am Ada."}, {"role": "assistant", "content": "Hi Ada."},
                  {"role": "user", "content": "Who am I?"}])
    sent = fake_llm.requests[-1].json["messages"]
    assert [m["content"] for m in sent] == ["I am Ada.", "Hi Ada.", "Who am I?"]  # from the session, not doubled
    assert Session.objects.get(pk=session_id).messages.count() == 4
