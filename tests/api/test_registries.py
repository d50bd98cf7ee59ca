"""CRUD round trips for each registry, masked secrets, and the error envelope."""

from __future__ import annotations

import os
import re

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey
from registry.env_store import env_lookup
from registry.models import EnvVar, LLMModel

MODEL = {"model_id": "qwen3-14b", "api_protocol": "ollama", "api_base": "http://127.0.0.1:11434", "model_name": "qwen3:14b",
         "api_key": "sk-secret-value-f3a9", "context_window": 32768, "options": {"temperature": 0.7}}


def assert_error(res, status: int, code: str) -> dict:
    assert res.status_code == status, res.content
    body = res.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_model_crud_round_trip(staff_api: APIClient) -> None:
    res = staff_api.post("/v1/models", MODEL, format="json")
    assert res.status_code == 201, res.content
    assert res.json()["api_key"] == "sk-…f3a9"
    assert staff_api.get("/v1/models").json()["data"][0]["model_id"] == "qwen3-14b"
    res = staff_api.patch("/v1/models/qwen3-14b", {"display_name": "Qwen"}, format="json")
    assert res.json()["display_name"] == "Qwen" and res.json()["model_name"] == "qwen3:14b"
    res = staff_api.put("/v1/models/qwen3-14b", {"supports_vision": True}, format="json")
    assert res.json()["supports_vision"] is True and res.json()["display_name"] == "Qwen"
    assert LLMModel.objects.get().api_key == "sk-secret-value-f3a9"  # masked reads never overwrite the key
    assert staff_api.delete("/v1/models/qwen3-14b").status_code == 204
    assert_error(staff_api.get("/v1/models/qwen3-14b"), 404, "model_not_found")


def test_secrets_never_appear_in_reads(staff_api: APIClient, alice_api: APIClient) -> None:
    staff_api.post("/v1/models", MODEL, format="json")
    for client in (staff_api, alice_api):
        assert b"sk-secret-value" not in client.get("/v1/models").content
        assert b"sk-secret-value" not in client.get("/v1/models/qwen3-14b").content


def test_env_references_are_shown_as_references(staff_api: APIClient) -> None:
    res = staff_api.post("/v1/models", {**MODEL, "api_key": "${OPENAI_API_KEY}"}, format="json")
    assert res.json()["api_key"] == "${OPENAI_API_KEY}"


def test_duplicate_model_is_409(staff_api: APIClient) -> None:
    staff_api.post("/v1/models", MODEL, format="json")
    assert_error(staff_api.post("/v1/models", MODEL, format="json"), 409, "conflict")


@pytest.mark.parametrize(
    "patch,field",
    [({"api_protocol": "grpc"}, "api_protocol"), ({"model_id": "bad id!"}, "model_id"), ({"api_base": "ftp://x"}, "api_base"),
     ({"context_window": "lots"}, "context_window"), ({"options": [1, 2]}, "options"), ({"enabled": "maybe"}, "enabled"),
     ({"surprise": 1}, "surprise")],
)
def test_bad_model_input_is_400_with_the_field(staff_api: APIClient, patch: dict, field: str) -> None:
    err = assert_error(staff_api.post("/v1/models", {**MODEL, **patch}, format="json"), 400, "validation_error")
    assert field in err["detail"]
    assert not LLMModel.objects.exists()


def test_malformed_json_is_400(staff_api: APIClient) -> None:
    res = staff_api.generic("POST", "/v1/models", '{"model_id": ', content_type="application/json")
    assert_error(res, 400, "malformed_json")
    res = staff_api.generic("POST", "/v1/models", "[1, 2]", content_type="application/json")
    assert_error(res, 400, "validation_error")


def test_unknown_v1_path_is_json_404(staff_api: APIClient) -> None:
    assert_error(staff_api.get("/v1/nope"), 404, "not_found")


def test_function_tool_round_trip(staff_api: APIClient, alice_api: APIClient) -> None:
    tool = {
        "tool_id": "adder",
        "name": "add",
        "description": "Add.",
        "callable": "tests.tool_fns:add",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    }
    res = staff_api.post("/v1/tools", tool, format="json")
    assert res.status_code == 201, res.content
    assert res.json()["tool_type"] == "function"
    assert [t["tool_id"] for t in alice_api.get("/v1/tools?tool_type=function").json()["data"]] == ["adder"]
    assert alice_api.get("/v1/tools?tool_type=mcp").json()["data"] == []
    assert staff_api.patch("/v1/tools/adder", {"enabled": False}, format="json").json()["enabled"] is False
    assert staff_api.delete("/v1/tools/adder").status_code == 204


@pytest.mark.parametrize(
    "tool,code",
    [
        ({"callable": "tests.tool_fns:missing"}, "invalid_callable"),
        ({"callable": "no_such_module_xyz:f"}, "invalid_callable"),
        ({"callable": "tests.tool_fns:NOT_CALLABLE"}, "invalid_callable"),
        ({"callable": "tests.tool_fns:add", "parameters": {"type": "array"}}, "invalid_schema"),
        (
            {"callable": "tests.tool_fns:add", "parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}},
            "invalid_schema",
        ),
        ({"callable": "tests.tool_fns:add", "endpoint": "http://127.0.0.1:9/x"}, "validation_error"),
        ({}, "validation_error"),
        ({"callable": "tests.tool_fns:add", "name": "has space"}, "validation_error"),
        ({"callable": "tests.tool_fns:add", "tool_type": "mcp"}, "validation_error"),
    ],
)
def test_bad_tools_are_400(staff_api: APIClient, tool: dict, code: str) -> None:
    body = {"tool_id": "t1", "name": "t1", **tool}
    assert_error(staff_api.post("/v1/tools", body, format="json"), 400, code)


def test_endpoint_tool_is_accepted(staff_api: APIClient) -> None:
    res = staff_api.post(
        "/v1/tools", {"tool_id": "hook", "name": "hook", "endpoint": "https://hooks.example.com/x"}, format="json"
    )
    assert res.status_code == 201


def test_env_resolves_from_the_store_without_touching_the_process_environment(staff_api: APIClient, monkeypatch) -> None:
    monkeypatch.setenv("AGENTSITE_TEST_TOKEN", "from-process")
    res = staff_api.post(
        "/v1/env", {"key": "AGENTSITE_TEST_TOKEN", "value": "tok-1234567890abcd", "is_secret": True}, format="json"
    )
    assert res.status_code == 201
    assert env_lookup("AGENTSITE_TEST_TOKEN") == "tok-1234567890abcd"
    assert os.environ["AGENTSITE_TEST_TOKEN"] == "from-process"
    assert staff_api.get("/v1/env").json()["data"] == [
        {"key": "AGENTSITE_TEST_TOKEN", "value": "tok…abcd", "is_secret": True, "updated_at": res.json()["updated_at"]}
    ]
    res = staff_api.post("/v1/env", {"key": "AGENTSITE_TEST_TOKEN", "value": "plain", "is_secret": False}, format="json")
    assert res.status_code == 200 and res.json()["value"] == "plain"
    assert env_lookup("AGENTSITE_TEST_TOKEN") == "plain"
    assert staff_api.delete("/v1/env/AGENTSITE_TEST_TOKEN").status_code == 204
    assert env_lookup("AGENTSITE_TEST_TOKEN") == "from-process"
    assert_error(staff_api.delete("/v1/env/AGENTSITE_TEST_TOKEN"), 404, "not_found")
    assert_error(staff_api.post("/v1/env", {"key": "1BAD", "value": "x"}, format="json"), 400, "validation_error")


def test_env_detect_reports_sources(staff_api: APIClient, monkeypatch) -> None:
    monkeypatch.setenv("FROM_PROCESS_X", "1")
    monkeypatch.delenv("MISSING_X", raising=False)
    staff_api.post(
        "/v1/models", {**MODEL, "api_key": "${FROM_DB_X}", "api_base": "http://${MISSING_X:-127.0.0.1}:1"}, format="json"
    )
    staff_api.post("/v1/tools", {"tool_id": "h", "name": "h", "endpoint": "https://x/${FROM_PROCESS_X}"}, format="json")
    staff_api.post("/v1/env", {"key": "FROM_DB_X", "value": "v"}, format="json")
    found = {d["key"]: d for d in staff_api.post("/v1/env/detect").json()["data"]}
    assert found["FROM_DB_X"]["source"] == "database"
    assert found["FROM_PROCESS_X"]["source"] == "process" and found["FROM_PROCESS_X"]["referenced_by"] == ["tool:h"]
    assert found["MISSING_X"] == {"key": "MISSING_X", "set": False, "source": "missing", "referenced_by": ["model:qwen3-14b"]}


def test_create_api_key_command_prints_once_and_stores_only_a_hash(alice) -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("create_api_key", "alice", stdout=out)
    plaintext = out.getvalue().strip()
    key = ApiKey.objects.get(user=alice)
    assert plaintext.startswith("ask_") and len(plaintext) > 40
    assert plaintext not in (key.key_hash, key.prefix) and len(key.key_hash) == 64
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert client.get("/v1/models").status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_healthz(client, db) -> None:
    res = client.get("/healthz")
    assert res.status_code == 200 and res.json()["status"] == "ok"


def test_env_store_values_show_masked_in_admin(admin_client, staff_api: APIClient) -> None:
    staff_api.post("/v1/models", MODEL, format="json")
    EnvVar.objects.create(key="ADMIN_SECRET_X", value="super-secret-admin-value", is_secret=True)
    for url in ("/admin/registry/llmmodel/", f"/admin/registry/llmmodel/{LLMModel.objects.get().pk}/change/",
                "/admin/registry/envvar/", f"/admin/registry/envvar/{EnvVar.objects.get().pk}/change/"):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert b"sk-secret-value" not in page.content and b"super-secret-admin-value" not in page.content


def test_openapi_schema_and_docs_are_served(client, db) -> None:
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    # Swagger UI's assets are served from here, not a CDN. (Not a search for "cdn" in the page: its
    # random CSRF token contains those three letters now and then.)
    assert docs.status_code == 200 and b"/static/drf_spectacular_sidecar/" in docs.content
    assert not re.search(rb'(?:src|href)="(?:https?:)?//', docs.content)
