"""/v1/infer and /v1/infer/stream through HTTP against the fake model server, both protocols."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

from registry.models import LLMModel, Tool
from templates_app.services import template_create
from tests.api.test_registries import assert_error
from tests.factories import LLMModelFactory, save_fields
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.inference.conftest import sent_messages, stream
from tests.mcp_servers import free_port

PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cf00000301010018dd8db40000000049454e44ae426082"
)).decode()


def test_plain_answer(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    fake_llm.script([Reply(content="Hello there!", usage={"prompt_tokens": 7, "completion_tokens": 3})])
    res = alice_api.post("/v1/infer", {"model_id": model.model_id, "text": "Hi"}, format="json")
    assert res.status_code == 200, res.content
    body = res.json()
    assert body["content"] == "Hello there!" and body["finish_reason"] == "stop" and body["tool_rounds"] == 0
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert body["session_id"] is None
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    request = fake_llm.last_request()
    assert request.json["stream"] is False and request.json["model"] == "fake-model"
    assert sent_messages(fake_llm) == [{"role": "user", "content": "Hi"}]


def test_credentials_in_the_api_base_become_basic_auth_and_leave_the_url(
    db, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    base = fake_llm.openai_base.replace("http://", "http://proxy:s3cret@")
    LLMModelFactory(model_id="behind-auth", api_protocol="openai", api_base=base)
    fake_llm.script([Reply(content="ok")])
    res = alice_api.post("/v1/infer", {"model_id": "behind-auth", "text": "Hi"}, format="json")
    assert res.status_code == 200, res.content
    request = fake_llm.last_request()
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"proxy:s3cret").decode()
    assert request.path == "/v1/chat/completions"


def test_streamed_answer_with_thinking(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    fake_llm.script([Reply(content="The answer is 42.", thinking="Let me think about this.", chunk_size=4)])
    events = stream(alice_api, {"model_id": model.model_id, "text": "Question?", "think": True})
    deltas = [d for e, d in events if e == "delta"]
    done = events[-1][1]
    assert events[-1][0] == "done"
    assert "".join(d.get("content", "") for d in deltas) == done["content"] == "The answer is 42."
    assert "".join(d.get("thinking", "") for d in deltas) == done["thinking"] == "Let me think about this."
    assert len(deltas) > 4  # it really streamed in pieces
    assert fake_llm.last_request().json["stream"] is True
    if model.api_protocol == "ollama":
        assert fake_llm.last_request().json["think"] is True


@pytest.mark.parametrize("style", ["think_tags", "prefilled"])
def test_inline_think_tags_become_thinking(db, fake_llm: FakeLLMServer, alice_api: APIClient, style: str) -> None:
    options = {"think_prefilled": True} if style == "prefilled" else {}
    LLMModelFactory(model_id="r1", fake=fake_llm, model_name="r1", options=options)
    fake_llm.script([Reply(content="Paris.", thinking="Capital of France.", thinking_style=style, chunk_size=3)])
    events = stream(alice_api, {"model_id": "r1", "text": "Capital?"})
    done = events[-1][1]
    assert done["content"] == "Paris." and done["thinking"] == "Capital of France."
    assert "think_prefilled" not in fake_llm.last_request().json


def test_one_tool_call(model: LLMModel, adder: Tool, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    fake_llm.script([Reply(tool_calls=[("add", {"a": 2, "b": 40})]), Reply(content="It is 42.")])
    body = alice_api.post(
        "/v1/infer", {"model_id": model.model_id, "tool_ids": ["math.add"], "text": "2+40?"}, format="json"
    ).json()
    assert body["content"] == "It is 42." and body["tool_rounds"] == 1 and body["finish_reason"] == "stop"
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    call = body["messages"][1]["tool_calls"][0]
    assert call["tool_id"] == "math.add" and call["name"] == "add" and call["arguments"] == {"a": 2, "b": 40}
    result = body["messages"][2]
    assert result["content"] == [{"type": "text", "text": "42"}] and result["is_error"] is False
    first = fake_llm.requests[0].json
    assert first["tools"][0]["function"]["name"] == "add"
    second = sent_messages(fake_llm)
    tool_message = second[-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "42"
    if model.api_protocol == "openai":
        assert tool_message["tool_call_id"] == call["id"]
        assert isinstance(second[-2]["tool_calls"][0]["function"]["arguments"], str)
    else:
        assert tool_message["tool_name"] == "add"
        assert second[-2]["tool_calls"][0]["function"]["arguments"] == {"a": 2, "b": 40}


def test_several_calls_in_one_round_stream(model: LLMModel, adder: Tool, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    fake_llm.script([
        Reply(content="Computing.", tool_calls=[("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})], chunk_size=3),
        Reply(content="3 and 7."),
    ])
    events = stream(alice_api, {"model_id": model.model_id, "tool_ids": ["math.add"], "text": "both?"})
    names = [e for e, _ in events]
    assert names.count("tool_call") == 2 and names.count("tool_result") == 2
    # in order of appearance: calls, the assistant message holding them, then results
    first_message = names.index("message")
    assert names.index("tool_call") < first_message < names.index("tool_result")
    results = {d["id"]: d for e, d in events if e == "tool_result"}
    calls = [d for e, d in events if e == "tool_call"]
    assert [results[c["id"]]["content"][0]["text"] for c in calls] == ["3", "7"]
    done = events[-1][1]
    # content deltas after the last tool_result concatenate to done.content
    last_result = max(i for i, (e, _) in enumerate(events) if e == "tool_result")
    after = "".join(d.get("content", "") for e, d in events[last_result:] if e == "delta")
    assert after == done["content"] == "3 and 7."
    assert [m["role"] for m in done["messages"]] == ["user", "assistant", "tool", "tool", "assistant"]


def test_multi_round_loop_and_max_tool_rounds(
    model: LLMModel, adder: Tool, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    fake_llm.script([Reply(tool_calls=[("add", {"a": i, "b": 1})]) for i in range(5)] + [Reply(content="Enough.")])
    body = alice_api.post(
        "/v1/infer", {"model_id": model.model_id, "tool_ids": ["math.add"], "text": "loop", "max_tool_rounds": 2}, format="json"
    ).json()
    assert body["finish_reason"] == "max_tool_rounds" and body["tool_rounds"] == 2
    chat = [r for r in fake_llm.requests if r.path in ("/v1/chat/completions", "/api/chat")]
    assert len(chat) == 3
    assert "tools" in chat[0].json and "tools" in chat[1].json and not chat[2].json.get("tools")


def test_a_raising_tool_gives_the_model_an_error(
    model: LLMModel, exploder: Tool, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    fake_llm.script([Reply(tool_calls=[("explode", {"reason": "kaboom"})]), Reply(content="Sorry, it failed.")])
    body = alice_api.post("/v1/infer", {"model_id": model.model_id, "tool_ids": ["explode"], "text": "go"}, format="json").json()
    assert body["content"] == "Sorry, it failed."
    result = body["messages"][2]
    assert result["is_error"] is True and "kaboom" in result["content"][0]["text"]
    assert "kaboom" in sent_messages(fake_llm)[-1]["content"]


def test_bad_tool_arguments_are_an_error_result(
    model: LLMModel, adder: Tool, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    fake_llm.script([Reply(tool_calls=[("add", {"a": "two"})]), Reply(content="Oops.")])
    body = alice_api.post("/v1/infer", {"model_id": model.model_id, "tool_ids": ["math.add"], "text": "go"}, format="json").json()
    result = body["messages"][2]
    assert result["is_error"] is True and "Invalid arguments" in result["content"][0]["text"]


def test_templates_render_before_the_first_round(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    template_create(name="summarize", content="Summarize in {{language}}:\n\n{{text}}")
    fake_llm.script(["Résumé."])
    body = alice_api.post("/v1/infer", {"model_id": model.model_id, "messages": [
        {"role": "user", "prompt_template": "summarize", "arguments": {"language": "French", "text": "{{language}} stays"}}
    ]}, format="json").json()
    assert sent_messages(fake_llm)[0]["content"] == "Summarize in French:\n\n{{language}} stays"
    assert body["messages"][0]["prompt_template"] == "summarize"
    err = assert_error(alice_api.post("/v1/infer", {"model_id": model.model_id, "messages": [
        {"role": "user", "prompt_template": "summarize", "arguments": {"language": "French"}}]}, format="json"),
        400, "template_variables_missing")
    assert err["detail"]["missing"] == ["text"]
    assert_error(alice_api.post("/v1/infer", {"model_id": model.model_id, "messages": [
        {"role": "user", "prompt_template": "nope", "arguments": {}}]}, format="json"), 404, "template_not_found")


def test_images_are_encoded_for_each_protocol(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    fake_llm.script(["A pixel."])
    alice_api.post("/v1/infer", {"model_id": model.model_id, "messages": [
        {"role": "user", "content": "What is this?", "images": [f"data:image/png;base64,{PNG}"]}]}, format="json")
    sent = sent_messages(fake_llm)[0]
    if model.api_protocol == "openai":
        assert sent["content"][0] == {"type": "text", "text": "What is this?"}
        assert sent["content"][1]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    else:
        assert sent["images"] == [PNG] and sent["content"] == "What is this?"


def test_audio_goes_to_openai_and_is_refused_for_ollama(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    wav = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt ").decode()
    fake_llm.script(["Heard."])
    res = alice_api.post("/v1/infer", {"model_id": model.model_id, "messages": [
        {"role": "user", "content": "Listen", "audio": [{"data": wav, "format": "wav"}]}]}, format="json")
    if model.api_protocol == "ollama":
        assert_error(res, 400, "unsupported_input")
        assert fake_llm.requests == []
    else:
        assert res.status_code == 200
        assert sent_messages(fake_llm)[0]["content"][1] == {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}}


def test_images_need_a_vision_model_and_a_size_limit(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient, settings
) -> None:
    body = {"model_id": model.model_id, "messages": [{"role": "user", "content": "x", "images": [PNG]}]}
    settings.AGENTSITE = {**settings.AGENTSITE, "MAX_IMAGE_BYTES": 10}
    assert_error(alice_api.post("/v1/infer", body, format="json"), 400, "input_too_large")
    save_fields(model, supports_vision=False)
    assert_error(alice_api.post("/v1/infer", body, format="json"), 400, "unsupported_input")
    assert fake_llm.requests == []


@pytest.mark.parametrize(
    "reply,status,code",
    [
        (Reply(status=500), 502, "model_unavailable"),
        (Reply(status=404), 502, "model_unavailable"),
        (Reply(first_delay_s=7), 504, "model_timeout"),
        (Reply(content="abc def", malformed=True), 502, "model_unavailable"),
    ],
)
def test_upstream_failures_map_to_the_error_envelope(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient,
                                                      reply: Reply, status: int, code: str) -> None:
    fake_llm.script([reply])
    err = assert_error(alice_api.post("/v1/infer", {"model_id": model.model_id, "text": "x"}, format="json"), status, code)
    assert "upstream_status" in err["detail"]
    if reply.status != 200:
        assert err["detail"]["upstream_status"] == reply.status


@pytest.mark.parametrize(
    "reply,says",
    [
        (Reply(content="one two three four five", chunk_size=3, mid_stream_error="overloaded", error_after=2), "overloaded"),
        (Reply(content="one two three four five", chunk_size=3, truncate_after=2), ""),
        (Reply(content="one two three four five", chunk_size=3, truncate_after=2, truncate_mode="eof"), "ended before"),
        (Reply(content="one two three four five", chunk_size=3, malformed=True), "malformed"),
    ],
)
def test_upstream_failure_mid_stream_is_an_error_event(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient,
                                                        reply: Reply, says: str) -> None:
    fake_llm.script([reply])
    events = stream(alice_api, {"model_id": model.model_id, "text": "x"})
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["code"] == "model_unavailable" and says in events[-1][1]["error"]["message"]
    if not reply.malformed:  # the text that came before the failure was relayed, ahead of the error
        assert "".join(d.get("content", "") for e, d in events[:-1] if e == "delta").startswith("one")


def test_refused_connection(db, alice_api: APIClient) -> None:
    port = free_port()  # nothing listens there
    LLMModelFactory(model_id="down", api_base=f"http://127.0.0.1:{port}/v1", model_name="x")
    err = assert_error(alice_api.post("/v1/infer", {"model_id": "down", "text": "x"}, format="json"), 502, "model_unavailable")
    assert err["detail"]["upstream_status"] is None


def test_request_errors_before_the_stream(model: LLMModel, alice_api: APIClient) -> None:
    assert_error(alice_api.post("/v1/infer/stream", {"model_id": "nope", "text": "x"}, format="json"), 404, "model_not_found")
    assert_error(
        alice_api.post("/v1/infer/stream", {"model_id": model.model_id, "tool_ids": ["nope"], "text": "x"}, format="json"),
        404,
        "tool_not_found",
    )
    assert_error(alice_api.post("/v1/infer", {"model_id": model.model_id}, format="json"), 400, "validation_error")
    assert_error(alice_api.post("/v1/infer", {"model_id": model.model_id, "text": "x", "think": "very"}, format="json"), 400,
                 "validation_error")
    assert_error(alice_api.post("/v1/infer", {"model_id": model.model_id, "text": "x", "max_tool_rounds": 10_000}, format="json"),
                 400, "validation_error")
    res = alice_api.generic("POST", "/v1/infer", "{nope", content_type="application/json")
    assert_error(res, 400, "malformed_json")
    assert_error(
        APIClient().post("/v1/infer", {"model_id": model.model_id, "text": "x"}, format="json"), 401, "not_authenticated"
    )
    assert_error(alice_api.get("/v1/infer"), 405, "method_not_allowed")


def test_models_detect_lists_what_the_server_offers(model: LLMModel, fake_llm: FakeLLMServer, staff_api: APIClient,
                                                    alice_api: APIClient) -> None:
    base = fake_llm.openai_base if model.api_protocol == "openai" else fake_llm.ollama_base
    fake_llm.set_model("fake-model")
    fake_llm.set_model("other-model")
    body = {"api_protocol": model.api_protocol, "api_base": base}
    found = {m["model_name"]: m for m in staff_api.post("/v1/models/detect", body, format="json").json()["data"]}
    assert found["fake-model"]["registered"] is True and found["other-model"]["registered"] is False
    assert alice_api.post("/v1/models/detect", body, format="json").status_code == 403
