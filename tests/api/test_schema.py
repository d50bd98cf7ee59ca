"""The OpenAPI schema says what the server accepts (agentsite/schema.py): closed request bodies,
cross-field rules, limits from the settings. Read through HTTP, and held against the server for
the cross-field rules (the fuzz test, tests/reliability/test_fuzz.py, does the rest at random)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from rest_framework.test import APIClient

from tests.factories import LLMModelFactory

STRICT_BODIES = [
    "InferRequestRequest", "MessageRequest", "AudioRequest", "ToolCallInRequest", "ToolCallRequestRequest", "ModelRequest",
    "PatchedModelRequest", "DetectModelsRequest", "ToolRequest", "PatchedToolRequest", "EnvVarRequest",
    "PromptTemplateRequest", "PatchedPromptTemplateRequest", "RenderRequest",
]


@pytest.fixture
def schema(db, settings) -> dict[str, Any]:
    settings.AGENTSITE = {**settings.AGENTSITE, "MAX_TOOL_ROUNDS_LIMIT": 7, "MAX_MESSAGES": 99}
    res = APIClient().get("/api/schema/?format=json")
    assert res.status_code == 200
    return res.json()


def _component(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return schema["components"]["schemas"][name]


def _validator(schema: dict[str, Any], name: str) -> jsonschema.Draft4Validator:
    """A validator for one component, ``$ref``s resolved against the whole document."""
    return jsonschema.Draft4Validator({"$ref": f"#/components/schemas/{name}", "components": schema["components"]})


@pytest.mark.parametrize("name", STRICT_BODIES)
def test_request_bodies_refuse_unknown_fields(schema: dict[str, Any], name: str) -> None:
    assert _component(schema, name)["additionalProperties"] is False


def test_limits_come_from_the_settings(schema: dict[str, Any]) -> None:
    props = _component(schema, "InferRequestRequest")["properties"]
    assert props["max_tool_rounds"]["maximum"] == 7 and props["max_tool_rounds"]["minimum"] == 0
    assert props["messages"]["maxItems"] == 99


def test_updates_are_partial_non_empty_and_required(schema: dict[str, Any]) -> None:
    for path, component in [("/v1/models/{model_id}", "PatchedModelRequest"), ("/v1/tools/{tool_id}", "PatchedToolRequest"),
                            ("/v1/prompt-templates/{id_or_name}", "PatchedPromptTemplateRequest")]:
        for method in ("put", "patch"):
            body = schema["paths"][path][method]["requestBody"]
            assert body["required"] is True
            assert body["content"]["application/json"]["schema"]["$ref"].endswith(component)
        assert _component(schema, component)["minProperties"] == 1
    assert "model_id" not in _component(schema, "PatchedModelRequest")["properties"]
    assert not {"tool_id", "tool_type"} & set(_component(schema, "PatchedToolRequest")["properties"])


def test_bodies_are_json_except_the_skill_upload(schema: dict[str, Any]) -> None:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {}) if isinstance(operation, dict) else {}
            expected = {"application/json", "multipart/form-data"} if path == "/v1/tools/skill" else {"application/json"}
            assert not content or set(content) == expected, (method, path, set(content))
            if content:
                assert "413" in operation["responses"] and "415" in operation["responses"]


# Cross-field rules: the schema and the server agree on each body.
CASES = [
    ("/v1/infer", "InferRequestRequest", {"model_id": "m"}, False),
    ("/v1/infer", "InferRequestRequest", {"model_id": "m", "messages": []}, False),
    ("/v1/infer", "InferRequestRequest", {"model_id": "m", "text": "hi", "max_tool_rounds": 8}, False),
    ("/v1/infer", "InferRequestRequest", {"model_id": "m", "messages": [{"role": "system", "content": "x",
                                                                        "images": ["/9j/"]}]}, False),
    ("/v1/infer", "InferRequestRequest", {"model_id": "m", "messages": [{"role": "assistant", "prompt_template": "t"}]},
     False),
    ("/v1/infer", "InferRequestRequest", {"model_id": "m", "messages": [
        {"content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, False),
    ("/v1/infer", "InferRequestRequest", {"model_id": "m", "options": {"temperature": "hot"}, "text": "x"}, False),
    ("/v1/infer", "InferRequestRequest", {"model_id": "m", "text": "hi"}, True),  # default rounds <= the limit (7)
    ("/v1/infer", "InferRequestRequest", {"model_id": "m", "messages": [{"content": [{"type": "text", "text": "a"}]}]}, True),
    ("/v1/tools/call", "ToolCallRequestRequest", {}, False),
    ("/v1/tools/call", "ToolCallRequestRequest", {"server": "s"}, False),
    ("/v1/tools/call", "ToolCallRequestRequest", {"tool_id": "x", "tool": "t"}, False),
    ("/v1/tools/call", "ToolCallRequestRequest", {"tool_id": "math.add", "arguments": {"a": 1, "b": 2}}, True),
    ("/v1/tools", "ToolRequest", {"tool_id": "x", "name": "x"}, False),
    ("/v1/tools", "ToolRequest", {"tool_id": "x", "name": "x", "callable": "tests.tool_fns:add", "endpoint": "http://h"},
     False),
    ("/v1/tools", "ToolRequest", {"tool_id": "call", "name": "x", "callable": "tests.tool_fns:add"}, False),
    ("/v1/tools", "ToolRequest", {"tool_id": "x", "name": "x", "endpoint": "ftp://h"}, False),
    ("/v1/tools", "ToolRequest", {"tool_id": "x", "name": "x", "callable": "tests.tool_fns:add", "endpoint": ""}, True),
    ("/v1/models", "ModelRequest", {"model_id": "o", "api_protocol": "ollama", "api_base": "http://h", "model_name": "m",
                                    "options": {"stop": "END"}}, False),
    ("/v1/models", "ModelRequest", {"model_id": "o", "api_protocol": "openai", "api_base": "http://h", "model_name": "m",
                                    "options": {"stop": "END"}}, True),
    ("/v1/models", "ModelRequest", {"model_id": "detect", "api_protocol": "openai", "api_base": "http://h",
                                    "model_name": "m"}, False),
    ("/v1/env", "EnvVarRequest", {"key": "A", "value": 5}, False),
]


@pytest.mark.parametrize(("path", "component", "body", "valid"), CASES)
def test_schema_and_server_agree_on_cross_field_rules(
    schema: dict[str, Any], staff_api: APIClient, fake_llm, path: str, component: str, body: dict, valid: bool
) -> None:
    from tests.factories import ADD_PARAMS, ToolFactory

    LLMModelFactory(model_id="m", fake=fake_llm)
    ToolFactory(tool_id="math.add", parameters=ADD_PARAMS)
    assert _validator(schema, component).is_valid(body) is valid
    res = staff_api.post(path, body, format="json")
    assert (res.status_code < 300) is valid, res.content
    if not valid:
        assert res.status_code == 400, res.content
