"""Bodies the /v1 endpoints used to half-accept, through HTTP: malformed multipart (a bare HTML
400), form bodies on JSON endpoints, PUT/PATCH without a body (a 200 no-op), and JSON values of
the wrong type that DRF coerced (``5`` for a string, ``"yes"`` for a boolean)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from registry.models import EnvVar, LLMModel, Tool
from templates_app.models import PromptTemplate
from tests.api.test_registries import MODEL, assert_error
from tests.factories import LLMModelFactory, ToolFactory

BOUNDARY = "xyz"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def _parts(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _field(name: str, value: str = "v", filename: str | None = None, headers: str = "") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{headers}\r\n{value}\r\n".encode()


# ---- malformed multipart -----------------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/form-data", _parts(_field("file", filename="a.zip"))),  # no boundary
    ("multipart/form-data; boundary=", _parts(_field("file", filename="a.zip"))),
    (MULTIPART, _parts(*(_field(f"f{i}") for i in range(1200)))),  # too many fields: was Django's bare HTML 400
    (MULTIPART, _parts(*(_field(f"f{i}", filename="a") for i in range(120)))),  # too many files: likewise
    (MULTIPART, _parts(_field("file", "!!!", filename="a.zip", headers="Content-Transfer-Encoding: base64\r\n"))),
], ids=["no-boundary", "empty-boundary", "too-many-fields", "too-many-files", "bad-base64"])
def test_a_malformed_multipart_body_is_400_in_the_envelope(staff_api: APIClient, content_type: str, body: bytes) -> None:
    res = staff_api.generic("POST", "/v1/tools/skill", body, content_type=content_type)
    err = assert_error(res, 400, "malformed_body")
    assert err["message"].startswith("The request body could not be parsed")


def test_malformed_json_keeps_its_own_code(staff_api: APIClient) -> None:
    assert_error(staff_api.generic("POST", "/v1/tools/skill", b"{nope", content_type="application/json"), 400, "malformed_json")
    assert_error(staff_api.generic("POST", "/v1/models", b"{nope", content_type="application/json"), 400, "malformed_json")


@pytest.mark.parametrize("path", ["/v1/models", "/v1/env", "/v1/tools", "/v1/prompt-templates", "/v1/models/detect"])
@pytest.mark.parametrize("content_type", [MULTIPART, "application/x-www-form-urlencoded"])
def test_json_endpoints_refuse_form_bodies(staff_api: APIClient, path: str, content_type: str) -> None:
    """Only the skill upload takes multipart; elsewhere a form body is 415, not half-read (a form
    cannot carry options/parameters/arguments objects, and its strings escape the type checks)."""
    body = _parts(_field("key", "A")) if content_type == MULTIPART else b"key=A&value=x"
    assert_error(staff_api.generic("POST", path, body, content_type=content_type), 415, "unsupported_media_type")
    assert not EnvVar.objects.exists()


# ---- PUT/PATCH without a body ----------------------------------------------------------------------


@pytest.fixture
def rows(db) -> None:
    LLMModelFactory(model_id="m", display_name="M")
    ToolFactory(tool_id="t", description="T")
    PromptTemplate.objects.create(name="p", content="hello")


@pytest.mark.parametrize("path", ["/v1/models/m", "/v1/tools/t", "/v1/prompt-templates/p"])
@pytest.mark.parametrize("method", ["put", "patch"])
@pytest.mark.parametrize("body", [None, {}], ids=["absent", "empty-object"])
def test_an_update_without_a_body_is_400_not_a_silent_no_op(staff_api: APIClient, rows: None, path: str, method: str,
                                                            body: dict | None) -> None:
    before = staff_api.get(path).json()
    res = getattr(staff_api, method)(path, body, format="json") if body is not None else getattr(staff_api, method)(path)
    err = assert_error(res, 400, "validation_error")
    assert err["message"] == "Nothing to update: send at least one field."
    assert err["detail"] == {"non_field_errors": ["Nothing to update: send at least one field."]}
    assert staff_api.get(path).json() == before  # nothing written (a template's version not bumped)


def test_an_update_of_an_unknown_row_is_still_404(staff_api: APIClient) -> None:
    assert_error(staff_api.put("/v1/models/nope"), 404, "model_not_found")


# ---- JSON values of the wrong type -----------------------------------------------------------------


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"key": "A", "value": 5}, "value", "Not a valid string."),
    ({"key": 7, "value": "x"}, "key", "Not a valid string."),
    ({"key": "A", "value": "x", "is_secret": "yes"}, "is_secret", "Must be a valid boolean."),
    ({"key": "A", "value": "x", "is_secret": 1}, "is_secret", "Must be a valid boolean."),
    ({"key": "A", "value": ["x"]}, "value", "Not a valid string."),
])
def test_env_refuses_values_of_the_wrong_json_type(staff_api: APIClient, body: dict, field: str, says: str) -> None:
    err = assert_error(staff_api.post("/v1/env", body, format="json"), 400, "validation_error")
    assert err["detail"] == {field: [says]}
    assert not EnvVar.objects.exists()


@pytest.mark.parametrize(("change", "field", "says"), [
    ({"context_window": "4096"}, "context_window", "A valid integer is required."),
    ({"context_window": 4096.0}, "context_window", "A valid integer is required."),
    ({"context_window": True}, "context_window", "A valid integer is required."),
    ({"timeout_s": True}, "timeout_s", "A valid number is required."),
    ({"timeout_s": "30"}, "timeout_s", "A valid number is required."),
    ({"supports_vision": "true"}, "supports_vision", "Must be a valid boolean."),
    ({"model_name": 3}, "model_name", "Not a valid string."),
])
def test_models_refuse_values_of_the_wrong_json_type(staff_api: APIClient, change: dict, field: str, says: str) -> None:
    err = assert_error(staff_api.post("/v1/models", {**MODEL, **change}, format="json"), 400, "validation_error")
    assert err["detail"] == {field: [says]}
    assert not LLMModel.objects.exists()
    assert staff_api.post("/v1/models", {**MODEL, "timeout_s": 30}, format="json").status_code == 201  # an int is a number


def test_tools_refuse_values_of_the_wrong_json_type(staff_api: APIClient) -> None:
    body = {"tool_id": "x", "name": "x", "callable": "tests.tool_fns:add", "enabled": "no"}
    assert assert_error(staff_api.post("/v1/tools", body, format="json"), 400, "validation_error")["detail"] == {
        "enabled": ["Must be a valid boolean."]}
    assert not Tool.objects.filter(tool_id="x").exists()


@pytest.mark.parametrize(("change", "detail"), [
    ({"max_tool_rounds": "3"}, {"max_tool_rounds": ["A valid integer is required."]}),
    ({"max_tool_rounds": 2.0}, {"max_tool_rounds": ["A valid integer is required."]}),
    ({"stream": "yes"}, {"stream": ["Must be a valid boolean."]}),
    ({"text": 5}, {"text": ["Not a valid string."]}),
    ({"tool_ids": ["ok", 1]}, {"tool_ids": {"1": ["Not a valid string."]}}),
    ({"model_id": 1}, {"model_id": ["Not a valid string."]}),
])
def test_infer_refuses_values_of_the_wrong_json_type(db, alice_api: APIClient, change: dict, detail: dict) -> None:
    LLMModelFactory(model_id="m")
    err = assert_error(alice_api.post("/v1/infer", {"model_id": "m", "text": "hi", **change}, format="json"),
                       400, "validation_error")
    assert err["detail"] == detail


def test_message_fields_and_tool_calls_refuse_values_of_the_wrong_json_type(db, alice_api: APIClient) -> None:
    LLMModelFactory(model_id="m")
    body = {"model_id": "m", "messages": [{"role": "user", "content": "hi", "images": [1]}]}
    err = assert_error(alice_api.post("/v1/infer", body, format="json"), 400, "validation_error")
    assert err["detail"] == {"messages": {"0": {"images": {"0": ["Not a valid string."]}}}}
    body = {"tool_id": 5, "arguments": {}}
    err = assert_error(alice_api.post("/v1/tools/call", body, format="json"), 400, "validation_error")
    assert err["detail"] == {"tool_id": ["Not a valid string."]}


def test_render_arguments_are_inserted_as_json_text(staff_api: APIClient, alice_api: APIClient) -> None:
    """Strings go in as they are; other values as their JSON text, not Python's ``True``/``None``."""
    staff_api.post("/v1/prompt-templates", {"name": "t", "content": "{{a}} {{b}} {{c}} {{d}} {{e}}"}, format="json")
    arguments = {"a": True, "b": None, "c": 2.5, "d": {"k": [1]}, "e": "plain"}
    res = alice_api.post("/v1/prompt-templates/t/render", {"arguments": arguments}, format="json")
    assert res.status_code == 200, res.content
    assert res.json() == {"content": 'true null 2.5 {"k": [1]} plain'}
    assert_error(alice_api.post("/v1/prompt-templates/t/render", {"arguments": None}, format="json"), 400, "validation_error")
    assert_error(alice_api.post("/v1/prompt-templates/t/render", ["a"], format="json"), 400, "validation_error")


def test_strings_are_taken_as_sent_not_trimmed(staff_api: APIClient) -> None:
    res = staff_api.post("/v1/prompt-templates", {"name": "t", "content": "Hello {{name}}\n", "description": " d "},
                         format="json")
    assert res.status_code == 201, res.content
    assert res.json()["content"] == "Hello {{name}}\n" and res.json()["description"] == " d "
    # a pattern means what it says: no whitespace trimmed away before it is matched
    err = assert_error(staff_api.post("/v1/env", {"key": " A", "value": "x"}, format="json"), 400, "validation_error")
    assert "key" in err["detail"]


# ---- media, replayed tool calls, function tool targets ---------------------------------------------


@pytest.mark.parametrize(("message", "field"), [
    ({"images": ["not base64!"]}, "images"),
    ({"images": ["iVBORw0KGgo"]}, "images"),  # unpadded
    ({"images": ["iVBORw0K\nGgoAAAA="]}, "images"),  # a line break
    ({"audio": [{"data": "UklGRg", "format": "wav"}]}, "audio"),
    ({"audio": [{"data": "UklGRiQAAABXQVZF", "format": "ogg"}]}, "audio"),
])
def test_media_must_be_standard_base64(db, alice_api: APIClient, message: dict, field: str) -> None:
    LLMModelFactory(model_id="m", supports_vision=True, supports_audio=True)
    body = {"model_id": "m", "messages": [{"role": "user", "content": "x", **message}]}
    err = assert_error(alice_api.post("/v1/infer", body, format="json"), 400, "validation_error")
    assert field in err["detail"]["messages"]["0"]


@pytest.mark.parametrize("call", [
    {"id": "c1", "arguments": {}},  # no name
    {"id": "c1", "name": "t", "arguments": "{}"},  # arguments as a JSON string: was a 500 on the way out
    {"id": "c1", "name": "t", "arguments": {}, "type": "function"},  # OpenAI's shape
])
def test_replayed_tool_calls_have_the_shape_infer_answers(db, alice_api: APIClient, call: dict) -> None:
    LLMModelFactory(model_id="m")
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
    err = assert_error(alice_api.post("/v1/infer", {"model_id": "m", "messages": messages}, format="json"),
                       400, "validation_error")
    assert "tool_calls" in err["detail"]["messages"]["1"]


def test_an_update_switches_a_function_tool_between_callable_and_endpoint(staff_api: APIClient, rows: None) -> None:
    res = staff_api.patch("/v1/tools/t", {"endpoint": "https://hooks.example.com/t"}, format="json")
    assert res.status_code == 200, res.content
    assert res.json()["endpoint"] == "https://hooks.example.com/t" and res.json()["callable"] == ""
    res = staff_api.patch("/v1/tools/t", {"callable": "tests.tool_fns:add"}, format="json")
    assert res.status_code == 200, res.content
    assert res.json()["callable"] == "tests.tool_fns:add" and res.json()["endpoint"] == ""
    for body in ({"callable": ""}, {"endpoint": ""}, {"callable": "tests.tool_fns:add", "endpoint": "https://x"}):
        assert_error(staff_api.patch("/v1/tools/t", body, format="json"), 400, "validation_error")
    assert Tool.objects.get(tool_id="t").callable == "tests.tool_fns:add"
