"""Input a run refuses before anything goes upstream, through HTTP on both protocols: options of
the wrong JSON type (the protocol adapter's table, on the merged options), and images inside a
content list (the same vision check and size limit as ``images``)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from registry.models import LLMModel
from tests.api.test_registries import assert_error
from tests.factories import LLMModelFactory, save_fields
from tests.fakes.fake_llm import FakeLLMServer
from tests.inference.conftest import sent_messages
from tests.inference.test_infer import PNG

# (protocol, option, a value of the wrong type, what the error says)
WRONG_OPTIONS = [
    ("openai", "temperature", "hot", "must be a number"),
    ("openai", "max_tokens", 1.5, "must be an integer"),
    ("openai", "max_tokens", True, "must be an integer"),
    ("openai", "stop", 7, "must be a string or a list of strings"),
    ("openai", "stream_options", "yes", "must be an object"),
    ("openai", "chat_template_kwargs", [1], "must be an object"),
    ("ollama", "num_ctx", "4096", "must be an integer"),
    ("ollama", "stop", "END", "must be a list of strings"),
    ("ollama", "use_mmap", 1, "must be true or false"),
    ("ollama", "temperature", False, "must be a number"),
    ("openai", "think_prefilled", "yes", "must be true or false"),
    ("ollama", "reasoning_field", "thoughts", 'must be one of "reasoning_content", "reasoning"'),
]


@pytest.mark.parametrize(("protocol", "name", "value", "says"), WRONG_OPTIONS)
def test_an_option_of_the_wrong_type_is_a_validation_error_naming_it(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient, protocol: str, name: str, value: object, says: str
) -> None:
    if model.api_protocol != protocol:
        pytest.skip("the option belongs to the other protocol")
    body = {"model_id": model.model_id, "text": "hi", "options": {name: value}}
    for path in ("/v1/infer", "/v1/infer/stream"):
        err = assert_error(alice_api.post(path, body, format="json"), 400, "validation_error")
        assert err["detail"] == {f"options.{name}": [says]}
        assert err["message"] == f"options.{name}: {says}"
    assert fake_llm.requests == []  # nothing went upstream


def test_unknown_option_names_pass_through_untouched(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    fake_llm.script(["ok"])
    options = {"temperature": 0, "top_k": 3, "my_server_knob": "anything", "seed": 7}
    res = alice_api.post("/v1/infer", {"model_id": model.model_id, "text": "hi", "options": options}, format="json")
    assert res.status_code == 200, res.content
    sent = fake_llm.last_request().json
    wire = sent if model.api_protocol == "openai" else sent["options"]
    assert {k: wire[k] for k in options} == options


def test_the_models_defaults_are_checked_merged_with_the_request(db, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    """A bad default (stored before the check existed) is named as the model's; the request may override it."""
    LLMModelFactory(model_id="m", fake=fake_llm, options={"temperature": "warm"})
    err = assert_error(alice_api.post("/v1/infer", {"model_id": "m", "text": "hi"}, format="json"), 400, "validation_error")
    assert err["detail"] == {"options.temperature": ["must be a number (the model's default)"]}
    fake_llm.script(["ok"])
    res = alice_api.post("/v1/infer", {"model_id": "m", "text": "hi", "options": {"temperature": 0.5}}, format="json")
    assert res.status_code == 200, res.content
    assert fake_llm.last_request().json["temperature"] == 0.5


def test_registration_refuses_default_options_of_the_wrong_type(staff_api: APIClient) -> None:
    model = {"model_id": "o", "api_protocol": "openai", "api_base": "http://127.0.0.1:1/v1", "model_name": "m"}
    err = assert_error(staff_api.post("/v1/models", {**model, "options": {"temperature": "hot"}}, format="json"),
                       400, "validation_error")
    assert err["detail"] == {"options.temperature": ["must be a number"]}
    assert staff_api.post("/v1/models", {**model, "options": {"stop": "END"}}, format="json").status_code == 201
    # a new protocol re-checks the stored options against its own table (Ollama wants a list here)
    res = staff_api.patch("/v1/models/o", {"api_protocol": "ollama", "api_base": "http://127.0.0.1:1"}, format="json")
    assert assert_error(res, 400, "validation_error")["detail"] == {"options.stop": ["must be a list of strings"]}
    res = staff_api.patch("/v1/models/o", {"api_protocol": "ollama", "options": {"stop": ["END"]}}, format="json")
    assert res.status_code == 200, res.content


# ---- images inside a content list ----------------------------------------------------------------


def _ask(model: LLMModel, *items: dict, role: str = "user") -> dict:
    return {"model_id": model.model_id, "messages": [{"role": role, "content": list(items)}]}


def test_an_image_item_in_a_content_list_reaches_the_model(model: LLMModel, fake_llm: FakeLLMServer,
                                                           alice_api: APIClient) -> None:
    fake_llm.script(["A pixel."])
    body = _ask(model, {"type": "text", "text": "What is this?"}, {"type": "image", "data": f"data:image/png;base64,{PNG}"})
    res = alice_api.post("/v1/infer", body, format="json")
    assert res.status_code == 200, res.content
    sent = sent_messages(fake_llm)[0]
    if model.api_protocol == "openai":
        assert sent["content"] == [{"type": "text", "text": "What is this?"},
                                   {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    else:
        assert sent["images"] == [PNG] and sent["content"] == "What is this?"


def test_an_image_item_needs_a_vision_model_the_size_limit_and_an_image(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient, settings
) -> None:
    """The same checks as the ``images`` field: before this, a content-list image skipped all three."""
    body = _ask(model, {"type": "text", "text": "x"}, {"type": "image", "data": PNG})
    not_an_image = _ask(model, {"type": "image", "data": "aGVsbG8gd29ybGQ="})
    assert_error(alice_api.post("/v1/infer", not_an_image, format="json"), 400, "unsupported_input")
    settings.AGENTSITE = {**settings.AGENTSITE, "MAX_IMAGE_BYTES": 10}
    assert_error(alice_api.post("/v1/infer", body, format="json"), 400, "input_too_large")
    assert_error(alice_api.post("/v1/infer/stream", body, format="json"), 400, "input_too_large")
    settings.AGENTSITE = {**settings.AGENTSITE, "MAX_IMAGE_BYTES": 10 * 1024 * 1024}
    save_fields(model, supports_vision=False)
    err = assert_error(alice_api.post("/v1/infer", body, format="json"), 400, "unsupported_input")
    assert "supports_vision" in err["message"]
    # a replayed tool result holding an image is an image sent to the model too
    tool_image = {"model_id": model.model_id, "messages": [
        {"role": "user", "content": "draw"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "draw", "arguments": {}}]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "image", "data": PNG, "mimeType": "image/png"}]},
    ]}
    assert_error(alice_api.post("/v1/infer", tool_image, format="json"), 400, "unsupported_input")
    assert fake_llm.requests == []


@pytest.mark.parametrize(("role", "item", "code", "says"), [
    ("user", {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}, "unsupported_input",
     '{"type": "image", "data"'),
    ("user", {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "unsupported_input", '"audio"'),
    ("user", {"text": "no type"}, "validation_error", "string type"),
    ("system", {"type": "image", "data": PNG}, "unsupported_input", "system messages take text content items"),
    ("assistant", {"type": "image", "data": PNG}, "unsupported_input", "assistant messages take text"),
    ("user", {"type": "text", "text": 5}, "validation_error", "must be a string"),
    ("user", {"type": "image", "data": None}, "validation_error", "must be a string"),
    ("tool", {"type": "resource", "resource": "file:///etc/passwd"}, "validation_error", "must be an object"),
    ("tool", {"type": "text", "text": ["a"]}, "validation_error", "must be a string"),
])
def test_content_items_the_model_would_never_get_are_refused(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient, role: str, item: dict, code: str, says: str
) -> None:
    """Before this, they were dropped on the way (or crashed the run with a 500: a number as text)."""
    messages = [{"role": "user", "content": "hi"}, {"role": role, "content": [{"type": "text", "text": "ok"}, item]}]
    if role == "tool":
        messages.insert(1, {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "t", "arguments": {}}]})
        messages[2]["tool_call_id"] = "c1"
    err = assert_error(alice_api.post("/v1/infer", {"model_id": model.model_id, "messages": messages}, format="json"), 400, code)
    assert says in err["message"], err
    index = len(messages) - 1
    assert any(key.startswith(f"messages[{index}].content[1]") for key in err["detail"]), err
    assert fake_llm.requests == []


def test_replayed_tool_results_keep_mcp_item_shapes(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    fake_llm.script(["Done."])
    messages = [
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": [{"type": "text", "text": "reading"}],
         "tool_calls": [{"id": "c1", "name": "read", "arguments": {}}]},
        {"role": "tool", "tool_call_id": "c1", "content": [
            {"type": "text", "text": "one"}, {"type": "resource", "resource": {"uri": "file:///a", "text": "two"}},
            {"type": "resource_link", "uri": "file:///b"}, {"type": "something_new", "value": 3}]},
    ]
    res = alice_api.post("/v1/infer", {"model_id": model.model_id, "messages": messages}, format="json")
    assert res.status_code == 200, res.content
    tool = next(m for m in sent_messages(fake_llm) if m["role"] == "tool")
    assert "one" in tool["content"] and "two" in tool["content"] and "file:///b" in tool["content"]
    assert "something_new" in tool["content"]
