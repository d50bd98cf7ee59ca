"""Input a run refuses before anything goes upstream, through HTTP on both protocols: options of
the wrong JSON type (the protocol adapter's table, on the merged options), and images inside a
content list (the same vision check and size limit as ``images``)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from registry.models import LLMModel
from tests.api.test_registries import assert_error
from tests.factories import LLMModelFactory
from tests.fakes.fake_llm import FakeLLMServer

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
