"""Small local models through HTTP, against the fake model server, both protocols:
tool calls written as text (tool_call_format "auto"), max_output_tokens, the loop guard and
model detection."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from rest_framework.test import APIClient

from inference.engine.repetition import STOP_NOTE
from registry.model_services import is_local_server
from registry.models import LLMModel, Tool
from tests.api.test_registries import assert_error
from tests.factories import LLMModelFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.inference.conftest import PROTOCOLS, stream

ADD_CALL = {"name": "add", "arguments": {"a": 2, "b": 40}}
# How small models write a call when the server has no parser for their template.
TEXT_CALLS = {
    "hermes": f"I will add them.\n<tool_call>\n{json.dumps(ADD_CALL)}\n</tool_call>",
    "mistral": f"[TOOL_CALLS][{json.dumps(ADD_CALL)}]",
    "mistral_args": '[TOOL_CALLS]add[ARGS]{"a": 2, "b": 40}',
    "fenced_json": f"```json\n{json.dumps(ADD_CALL, indent=2)}\n```",
    "bare_json": json.dumps(ADD_CALL),
}
CALL_MARKS = ("<tool_call>", "</tool_call>", "[TOOL_CALLS]", "[ARGS]", "```", '"name"', '"arguments"', "{")


@pytest.fixture(params=PROTOCOLS)
def auto_model(request, db, fake_llm: FakeLLMServer) -> LLMModel:
    return LLMModelFactory(model_id=f"small-{request.param}", api_protocol=request.param, fake=fake_llm,
                           tool_call_format="auto", timeout_s=5)


def chat_requests(fake: FakeLLMServer) -> list[dict]:
    return [r.json for r in fake.requests if r.path in ("/v1/chat/completions", "/api/chat")]


def infer(client: APIClient, body: dict[str, Any], streaming: bool) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """The final result and, when streaming, every event."""
    if streaming:
        events = stream(client, body)
        assert events[-1][0] == "done", events[-1]
        return events[-1][1], events
    res = client.post("/v1/infer", body, format="json")
    assert res.status_code == 200, res.content
    return res.json(), []


# ---- text tool calls -------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("form", sorted(TEXT_CALLS))
def test_a_tool_call_written_as_text_runs_the_tool(
    auto_model: LLMModel, adder: Tool, fake_llm: FakeLLMServer, alice_api: APIClient, form: str, streaming: bool
) -> None:
    fake_llm.script([Reply(content=TEXT_CALLS[form], chunk_size=3), Reply(content="2 + 40 is 42.", chunk_size=3)])
    done, events = infer(alice_api, {"model_id": auto_model.model_id, "tool_ids": ["math.add"], "text": "2+40?"}, streaming)
    assert done["tool_rounds"] == 1 and done["finish_reason"] == "stop" and done["content"] == "2 + 40 is 42."
    assert [m["role"] for m in done["messages"]] == ["user", "assistant", "tool", "assistant"]
    call = done["messages"][1]["tool_calls"][0]
    assert call["tool_id"] == "math.add" and call["name"] == "add" and call["arguments"] == {"a": 2, "b": 40}
    assert done["messages"][2]["content"] == [{"type": "text", "text": "42"}] and not done["messages"][2]["is_error"]
    assert not any(mark in done["messages"][1]["content"] for mark in CALL_MARKS)
    if streaming:
        deltas = [d.get("content", "") for e, d in events if e == "delta"]
        assert not any(mark in d for d in deltas for mark in CALL_MARKS), deltas
        assert [d["id"] for e, d in events if e == "tool_call"] == [call["id"]]
    # the next round gets the call back as the model wrote it, the result in its family's form
    follow_up = chat_requests(fake_llm)[1]["messages"]
    assert [m["role"] for m in follow_up] == ["user", "assistant", "user"]
    assert "tool_calls" not in follow_up[1]
    result = follow_up[2]["content"]
    if form == "hermes":
        assert "<tool_call>" in follow_up[1]["content"] and result == "<tool_response>\n42\n</tool_response>"
    elif form.startswith("mistral"):
        assert follow_up[1]["content"].startswith("[TOOL_CALLS]") and result == '[TOOL_RESULTS]{"content": "42"}[/TOOL_RESULTS]'
    else:
        assert json.loads(follow_up[1]["content"]) == ADD_CALL and result == "Result of the tool call add:\n42"


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "whole"])
def test_a_name_that_is_not_offered_is_shown_not_run(
    auto_model: LLMModel, adder: Tool, fake_llm: FakeLLMServer, alice_api: APIClient, streaming: bool
) -> None:
    text = '<tool_call>\n{"name": "delete_files", "arguments": {"path": "/"}}\n</tool_call>'
    fake_llm.script([Reply(content=text, chunk_size=4)])
    done, events = infer(alice_api, {"model_id": auto_model.model_id, "tool_ids": ["math.add"], "text": "go"}, streaming)
    assert done["content"] == text and done["tool_rounds"] == 0 and "tool_calls" not in done["messages"][1]
    if streaming:
        assert "".join(d.get("content", "") for e, d in events if e == "delta") == text
    assert len(chat_requests(fake_llm)) == 1


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "whole"])
def test_json_that_is_only_an_example_in_prose_is_not_a_call(
    auto_model: LLMModel, adder: Tool, fake_llm: FakeLLMServer, alice_api: APIClient, streaming: bool
) -> None:
    answers = [
        f"To add numbers, the tool takes a call like:\n```json\n{json.dumps(ADD_CALL)}\n```\nand answers with the sum.",
        f"For example:\n{json.dumps(ADD_CALL)}",
        f"You could send {json.dumps(ADD_CALL)} yourself.",
    ]
    for answer in answers:
        fake_llm.script([Reply(content=answer, chunk_size=5)])
        done, _ = infer(alice_api, {"model_id": auto_model.model_id, "tool_ids": ["math.add"], "text": "How?"}, streaming)
        assert done["content"] == answer and done["tool_rounds"] == 0


def test_native_models_leave_text_calls_alone(adder: Tool, fake_llm: FakeLLMServer, alice_api: APIClient, db) -> None:
    LLMModelFactory(model_id="hosted", fake=fake_llm)  # tool_call_format defaults to "native"
    fake_llm.script([Reply(content=TEXT_CALLS["hermes"])])
    done, _ = infer(alice_api, {"model_id": "hosted", "tool_ids": ["math.add"], "text": "2+40?"}, True)
    assert done["content"] == TEXT_CALLS["hermes"] and done["tool_rounds"] == 0


def test_structured_calls_still_work_in_auto_mode(
    auto_model: LLMModel, adder: Tool, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    fake_llm.script([Reply(tool_calls=[("add", {"a": 1, "b": 2})]), Reply(content="3")])
    done, _ = infer(alice_api, {"model_id": auto_model.model_id, "tool_ids": ["math.add"], "text": "1+2"}, True)
    assert done["tool_rounds"] == 1 and done["content"] == "3"
    follow_up = chat_requests(fake_llm)[1]["messages"]
    assert follow_up[1]["tool_calls"] and follow_up[2]["role"] == "tool"  # structured stays structured


# ---- max_output_tokens -----------------------------------------------------------------------


def _cap(body: dict[str, Any], protocol: str) -> Any:
    return body.get("max_tokens") if protocol == "openai" else (body.get("options") or {}).get("num_predict")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_max_output_tokens_is_sent_as_the_protocols_cap(db, fake_llm: FakeLLMServer, alice_api: APIClient, protocol: str) -> None:
    LLMModelFactory(model_id="capped", api_protocol=protocol, fake=fake_llm)
    LLMModelFactory(model_id="uncapped", api_protocol=protocol, fake=fake_llm, max_output_tokens=None)
    own = {"max_tokens": 50} if protocol == "openai" else {"num_predict": 50}
    cases = [("capped", {}, True), ("capped", {}, False), ("capped", own, True), ("uncapped", {}, True)]
    for model_id, options, streaming in cases:
        infer(alice_api, {"model_id": model_id, "text": "hi", "options": options}, streaming)
        sent = chat_requests(fake_llm)[-1]
        expected = {"capped": 50 if options else 4096, "uncapped": None}[model_id]
        assert _cap(sent, protocol) == expected, (model_id, options)
    if protocol == "openai":  # a cap under the newer name counts as the request's own
        infer(alice_api, {"model_id": "capped", "text": "hi", "options": {"max_completion_tokens": 9}}, False)
        sent = chat_requests(fake_llm)[-1]
        assert sent["max_completion_tokens"] == 9 and "max_tokens" not in sent


def test_model_registration_takes_the_new_fields(staff_api: APIClient) -> None:
    body = {"model_id": "local", "api_protocol": "openai", "api_base": "http://127.0.0.1:8080/v1", "model_name": "qwen"}
    created = staff_api.post("/v1/models", body, format="json").json()
    assert created["max_output_tokens"] == 4096 and created["tool_call_format"] == "native"
    res = staff_api.patch("/v1/models/local", {"max_output_tokens": None, "tool_call_format": "auto"}, format="json")
    assert res.status_code == 200 and res.json()["max_output_tokens"] is None and res.json()["tool_call_format"] == "auto"
    error = assert_error(staff_api.patch("/v1/models/local", {"tool_call_format": "xml"}, format="json"), 400, "validation_error")
    assert "tool_call_format" in error["detail"]
    error = assert_error(staff_api.patch("/v1/models/local", {"max_output_tokens": 0}, format="json"), 400, "validation_error")
    assert "max_output_tokens" in error["detail"]


# ---- the loop guard --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stream_repeating_itself_is_stopped_with_length_and_a_note(
    db, fake_llm: FakeLLMServer, alice_api: APIClient, protocol: str
) -> None:
    LLMModelFactory(model_id="loopy", api_protocol=protocol, fake=fake_llm)
    loop = "Sure! 2 + 40 = 42. " * 2000
    fake_llm.script([Reply(content=loop, chunk_size=19, delay_s=0.0005)])
    started = time.monotonic()
    done, events = infer(alice_api, {"model_id": "loopy", "text": "2+40?"}, True)
    assert done["finish_reason"] == "length" and done["content"].endswith(STOP_NOTE)
    assert 2000 <= len(done["content"]) < 4000 and time.monotonic() - started < 10
    assert "".join(d.get("content", "") for e, d in events if e == "delta") == done["content"]
    assert fake_llm.wait_disconnects(1)  # the upstream request was closed, not read to its end
    fake_llm.script([Reply(content=loop)])
    whole, _ = infer(alice_api, {"model_id": "loopy", "text": "2+40?"}, False)
    assert whole["finish_reason"] == "length" and whole["content"].endswith(STOP_NOTE) and len(whole["content"]) < 4000


# ---- detection -------------------------------------------------------------------------------


def test_detect_reads_vision_and_context_from_ollama_show(db, fake_llm: FakeLLMServer, staff_api: APIClient) -> None:
    fake_llm.set_model("llava:7b", capabilities=["completion", "vision"], context_length=4096)
    fake_llm.set_model("qwen2.5-coder:0.5b", capabilities=["completion", "tools"], context_length=32768, num_ctx=8192)
    body = {"api_protocol": "ollama", "api_base": fake_llm.ollama_base}
    found = {m["model_name"]: m for m in staff_api.post("/v1/models/detect", body, format="json").json()["data"]}
    assert found["llava:7b"]["supports_vision"] is True and found["llava:7b"]["context_window"] == 4096
    coder = found["qwen2.5-coder:0.5b"]
    assert coder["supports_vision"] is False and coder["context_window"] == 8192  # the modelfile's num_ctx wins
    assert {m["tool_call_format"] for m in found.values()} == {"auto"}
    shows = [r.json["model"] for r in fake_llm.requests if r.path == "/api/show"]
    assert sorted(shows) == sorted(found)


@pytest.mark.parametrize("listing", ["llamacpp", "vllm", "openai"])
def test_detect_reads_openai_compatible_model_metadata(db, fake_llm: FakeLLMServer, staff_api: APIClient, listing: str) -> None:
    fake_llm.models.clear()
    fake_llm.set_model("vision-model", capabilities=["completion", "vision"], context_length=32768, openai_listing=listing)
    fake_llm.set_model("text-model", capabilities=["completion"], context_length=16384, openai_listing=listing, num_ctx=2048)
    body = {"api_protocol": "openai", "api_base": fake_llm.openai_base}
    found = {m["model_name"]: m for m in staff_api.post("/v1/models/detect", body, format="json").json()["data"]}
    vision, text = found["vision-model"], found["text-model"]
    if listing == "llamacpp":
        assert (vision["supports_vision"], text["supports_vision"]) == (True, False)
        assert text["context_window"] == 2048  # the window llama-server runs with (n_ctx)
    elif listing == "vllm":
        assert vision["supports_vision"] is None and text["context_window"] == 16384  # max_model_len
    else:
        assert vision["supports_vision"] is None and vision["context_window"] is None  # nothing said, nothing guessed
    assert vision["tool_call_format"] == "auto"  # 127.0.0.1 is a local server


def test_detect_suggests_auto_only_for_local_servers() -> None:
    assert is_local_server(api_protocol="ollama", api_base="https://ollama.example.com")
    for base in ("http://localhost:8080/v1", "http://127.0.0.1:1234/v1", "http://192.168.1.20:8000/v1",
                 "http://llamacpp:8080/v1", "http://gpu-box.local:8000/v1", "http://[::1]:8080/v1"):
        assert is_local_server(api_protocol="openai", api_base=base), base
    for base in ("https://api.openai.com/v1", "https://api.deepseek.com/v1", "https://openrouter.ai/api/v1"):
        assert not is_local_server(api_protocol="openai", api_base=base), base
    assert is_local_server(api_protocol="openai", api_base="https://llm.example.com/v1", entries=[{"owned_by": "vllm"}])


def test_detected_models_are_registered_with_what_the_server_said(admin_client, fake_llm: FakeLLMServer) -> None:
    fake_llm.set_model("llava:7b", capabilities=["completion", "vision"], context_length=4096)
    detect = "/admin/registry/llmmodel/detect/"
    page = admin_client.post(detect, {"detect": "1", "api_protocol": "ollama", "api_base": fake_llm.ollama_base})
    assert page.status_code == 200 and "Context window" in page.content.decode()
    admin_client.post(detect, {"register": "1", "model_name": ["llava:7b", "fake-model"]}, follow=True)
    llava, fake = LLMModel.objects.get(model_name="llava:7b"), LLMModel.objects.get(model_name="fake-model")
    assert (llava.supports_vision, llava.context_window, llava.tool_call_format) == (True, 4096, "auto")
    assert fake.supports_vision is True and fake.context_window == 32768
