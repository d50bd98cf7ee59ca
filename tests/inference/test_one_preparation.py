"""The SDK and the server prepare a run with the same code (``Runtime.prepare``), so the same bad
input is refused the same way by both: same error code, same message."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from rest_framework.test import APIClient

from inference.engine import DomainError, InferenceRequest, Message, ModelRegistry, Runtime, ToolRegistry
from inference.engine.runtime import Limits
from inference.services import get_runtime
from registry.models import LLMModel
from registry.selectors import model_to_config

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

BAD_INPUTS: dict[str, tuple[dict[str, Any], str]] = {
    "too many tool rounds": ({"max_tool_rounds": 10_000}, "validation_error"),
    "unknown model": ({"model_id": "no-such-model"}, "model_not_found"),
    "unknown tool": ({"tool_ids": ["no.such.tool"]}, "tool_not_found"),
    "unknown template": ({"messages": [{"role": "user", "prompt_template": "nope", "arguments": {}}]}, "template_not_found"),
    "an image for a model without vision": (
        {"messages": [{"role": "user", "content": "look", "images": [PIXEL]}]},
        "unsupported_input",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_the_sdk_and_the_server_refuse_bad_input_alike(case: str, model: LLMModel, alice_api: APIClient, monkeypatch) -> None:
    model.supports_vision = False
    model.save()
    body: dict[str, Any] = {"model_id": model.model_id, "text": "hi", **BAD_INPUTS[case][0]}
    if "messages" in body:
        del body["text"]

    calls: list[InferenceRequest] = []
    prepare = Runtime.prepare

    def spy(self: Runtime, request: InferenceRequest, **kwargs: Any) -> Any:
        calls.append(request)
        return prepare(self, request, **kwargs)

    monkeypatch.setattr(Runtime, "prepare", spy)
    res = alice_api.post("/v1/infer", body, format="json")
    assert len(calls) == 1, "the server prepares through Runtime.prepare"

    # The same request through an SDK runtime with in-memory registries and the server's limits.
    sdk = Runtime(ModelRegistry([model_to_config(model)]), ToolRegistry(), limits=get_runtime().limits)
    request = replace(calls[0], messages=tuple(Message.from_dict(m) for m in body.get("messages", ())) or calls[0].messages)
    with pytest.raises(DomainError) as raised:
        sdk.prepare(request)

    assert res.status_code == raised.value.status
    assert res.json()["error"]["code"] == raised.value.code == BAD_INPUTS[case][1]
    assert res.json()["error"]["message"] == raised.value.message


def test_the_sdk_enforces_the_round_limit_instead_of_clamping() -> None:
    with pytest.raises(DomainError) as raised:
        Runtime(limits=Limits(max_tool_rounds_limit=5)).prepare(InferenceRequest(model_id="m", max_tool_rounds=6))
    assert raised.value.code == "validation_error" and raised.value.detail == {
        "max_tool_rounds": ["max_tool_rounds may be at most 5."]
    }
