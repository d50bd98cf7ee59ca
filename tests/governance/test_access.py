"""Access per group and staff rights, through HTTP, with five users:

``root`` (superuser), ``clerk`` (staff without registry permissions), ``operator`` (staff with
every registry permission but ``registry.run_code``), ``alice`` (group *research*) and ``bob``
(group *sales*).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from registry.models import LLMModel, Tool
from registry.staff_rights import registry_codenames
from tests.api.test_registries import assert_error
from tests.factories import ADD_PARAMS, LLMModelFactory, StaffFactory, ToolFactory, UserFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.mcp_servers.fixtures import DEMO_STDIO

PUBLIC_MODEL_FIELDS = {"model_id", "display_name", "api_protocol", "context_window", "supports_vision", "supports_audio",
                       "enabled"}
PUBLIC_TOOL_FIELDS = {"tool_id", "name", "description", "tool_type", "parameters", "enabled"}


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=bearer(user)["Authorization"])
    return client


@dataclass
class Cast:
    root: APIClient
    clerk: APIClient
    operator: APIClient
    alice: APIClient
    bob: APIClient


@pytest.fixture
def cast(db) -> Cast:
    research, sales = Group.objects.create(name="research"), Group.objects.create(name="sales")
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    clerk = StaffFactory(username="clerk", rights=())
    operator = StaffFactory(username="operator", rights=[r for r in registry_codenames() if r[1] != "run_code"])
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    alice.groups.add(research)
    bob.groups.add(sales)
    return Cast(*(client_for(u) for u in (root, clerk, operator, alice, bob)))


def ids(res: Any, key: str) -> list[str]:
    assert res.status_code == 200, res.content
    return [row[key] for row in res.json()["data"]]


@pytest.fixture
def registries(cast: Cast, fake_llm: FakeLLMServer) -> None:
    """``open`` (everyone) and ``deep`` (research) models; ``adder`` (everyone) and
    ``deep_add`` (research) function tools."""
    LLMModelFactory(model_id="open", fake=fake_llm)
    res = cast.root.post("/v1/models", {"model_id": "deep", "api_protocol": "openai", "api_base": fake_llm.openai_base,
                                        "model_name": "fake-model", "api_key": "sk-deep-secret-000",
                                        "allowed_groups": ["research"]}, format="json")
    assert res.status_code == 201 and res.json()["allowed_groups"] == ["research"], res.content
    ToolFactory(tool_id="adder", parameters=ADD_PARAMS)
    res = cast.root.post("/v1/tools", {"tool_id": "deep_add", "name": "deep_add", "callable": "tests.tool_fns:add",
                                       "parameters": ADD_PARAMS, "allowed_groups": ["research"]}, format="json")
    assert res.status_code == 201, res.content


def test_lists_show_each_user_only_what_their_groups_allow(cast: Cast, registries: None) -> None:
    assert ids(cast.alice.get("/v1/models"), "model_id") == ["deep", "open"]
    assert ids(cast.bob.get("/v1/models"), "model_id") == ["open"]
    assert {"adder", "deep_add"} <= set(ids(cast.alice.get("/v1/tools"), "tool_id"))
    assert "deep_add" not in ids(cast.bob.get("/v1/tools"), "tool_id")
    # Staff see everything, whatever their groups (the clerk holds no registry permission at all).
    for staff in (cast.root, cast.clerk, cast.operator):
        assert ids(staff.get("/v1/models"), "model_id") == ["deep", "open"]
        assert "deep_add" in ids(staff.get("/v1/tools"), "tool_id")


def test_non_staff_see_the_minimal_view_and_staff_the_whole(cast: Cast, registries: None) -> None:
    model = cast.alice.get("/v1/models/deep").json()
    assert set(model) == PUBLIC_MODEL_FIELDS
    assert all(set(m) == PUBLIC_MODEL_FIELDS for m in cast.bob.get("/v1/models").json()["data"])
    tool = cast.alice.get("/v1/tools/deep_add").json()
    assert set(tool) == PUBLIC_TOOL_FIELDS
    assert "tests.tool_fns" not in str(cast.alice.get("/v1/tools").json())
    whole = cast.clerk.get("/v1/models/deep").json()
    assert whole["api_base"] and whole["allowed_groups"] == ["research"] and "deep-secret" not in str(whole)
    assert cast.clerk.get("/v1/tools/deep_add").json()["callable"] == "tests.tool_fns:add"
    assert_error(cast.alice.get("/v1/tools/mcp"), 403, "permission_denied")
    assert cast.clerk.get("/v1/tools/mcp").status_code == 200


def test_a_resource_outside_the_callers_groups_answers_like_an_unknown_id(cast: Cast, registries: None) -> None:
    hidden, unknown = cast.bob.get("/v1/models/deep"), cast.bob.get("/v1/models/nope")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"] == {**unknown.json()["error"], "message": "No model with id 'deep'."}
    assert_error(cast.bob.get("/v1/tools/deep_add"), 404, "tool_not_found")
    run = {"model_id": "deep", "text": "hi"}
    for path in ("/v1/infer", "/v1/infer/stream"):
        assert_error(cast.bob.post(path, run, format="json"), 404, "model_not_found")
        body = cast.bob.post(path, {"model_id": "open", "tool_ids": ["deep_add"], "text": "hi"}, format="json")
        assert_error(body, 404, "tool_not_found")
        assert body.json()["error"]["detail"] == {"missing": ["deep_add"]}
    # Nothing was written for the refused runs: no session.
    assert cast.bob.post("/v1/infer", {**run, "session_id": "new"}, format="json").status_code == 404
    assert cast.bob.get("/v1/sessions").json()["data"] == []
    call = {"tool_id": "deep_add", "arguments": {"a": 1, "b": 2}}
    assert_error(cast.bob.post("/v1/tools/call", call, format="json"), 404, "tool_not_found")
    assert cast.alice.post("/v1/tools/call", call, format="json").json()["content"][0]["text"] == "3"


def test_a_member_runs_the_model_and_tool_her_group_was_given(cast: Cast, registries: None, fake_llm: FakeLLMServer) -> None:
    fake_llm.script([Reply(tool_calls=[("deep_add", {"a": 2, "b": 3})]), Reply(content="It is 5.")])
    body = cast.alice.post("/v1/infer", {"model_id": "deep", "tool_ids": ["deep_add"], "text": "2+3?"}, format="json")
    assert body.status_code == 200 and body.json()["content"] == "It is 5.", body.content


def test_an_mcp_servers_groups_cover_its_tools_and_a_tools_own_narrow_further(cast: Cast) -> None:
    body = {"mcpServers": {"demo": {**DEMO_STDIO, "allowed_groups": ["research", "sales"]}}}
    res = cast.root.post("/v1/tools/mcp", body, format="json")
    assert res.json()["servers"]["demo"]["status"] == "connected", res.content
    demo_tools = sorted(res.json()["servers"]["demo"]["tool_ids"])
    assert "allowed_groups" not in str(Tool.objects.get(tool_id=demo_tools[0]).server.config)  # not part of the config
    assert cast.root.get("/v1/tools/mcp").json()["data"][0]["allowed_groups"] == ["research", "sales"]
    assert set(demo_tools) <= set(ids(cast.alice.get("/v1/tools?tool_type=mcp"), "tool_id"))
    assert set(demo_tools) <= set(ids(cast.bob.get("/v1/tools?tool_type=mcp"), "tool_id"))
    # The server narrowed to research: bob loses every tool of it, by id and by server + name.
    assert cast.root.post("/v1/tools/mcp", {"mcpServers": {"demo": {**DEMO_STDIO, "allowed_groups": ["research"]}}},
                          format="json").status_code == 200
    assert ids(cast.bob.get("/v1/tools?tool_type=mcp"), "tool_id") == []
    tool = Tool.objects.get(tool_id=demo_tools[0])
    assert_error(cast.bob.post("/v1/tools/call", {"server": "demo", "tool": tool.remote_name, "arguments": {}}, format="json"),
                 404, "tool_not_found")
    # A tool's own groups narrow further: sales on the tool, research on the server = nobody but staff.
    assert cast.root.patch(f"/v1/tools/{tool.tool_id}", {"allowed_groups": ["sales"]}, format="json").status_code == 200
    assert tool.tool_id not in ids(cast.alice.get("/v1/tools?tool_type=mcp"), "tool_id")
    assert tool.tool_id not in ids(cast.bob.get("/v1/tools?tool_type=mcp"), "tool_id")
    assert tool.tool_id in ids(cast.clerk.get("/v1/tools?tool_type=mcp"), "tool_id")


SKILL_MD = b"---\nname: sums\ndescription: Adds numbers.\nallowed-tools: deep_add\n---\n# Sums\nUse deep_add.\n"


def skill_zip(entries: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    buf.seek(0)
    buf.name = "skill.zip"
    return buf


@pytest.mark.parametrize("user, offered", [("alice", True), ("bob", False)])
def test_a_skills_allowed_tools_never_reach_a_tool_the_caller_may_not_use(
    cast: Cast, registries: None, fake_llm: FakeLLMServer, user: str, offered: bool
) -> None:
    assert cast.root.post("/v1/tools/skill", {"file": skill_zip({"sums/SKILL.md": SKILL_MD})},
                          format="multipart").status_code == 201
    fake_llm.script([Reply(tool_calls=[("skill_sums", {})]), Reply(tool_calls=[("deep_add", {"a": 1, "b": 1})]),
                     Reply(content="done")])
    body = getattr(cast, user).post("/v1/infer", {"model_id": "open", "tool_ids": ["skill.sums"], "text": "1+1"},
                                    format="json").json()
    chat = [r.json for r in fake_llm.requests if r.path == "/v1/chat/completions"]
    assert ("deep_add" in {t["function"]["name"] for t in chat[1]["tools"]}) is offered
    added = [m for m in body["messages"] if m["role"] == "tool" and m["tool_id"] != "skill.sums"][0]  # the deep_add call's
    assert (added["is_error"] is False and added["content"][0]["text"] == "2") is offered


def test_an_unknown_group_name_is_400_and_writes_nothing(cast: Cast, fake_llm: FakeLLMServer) -> None:
    model = {"model_id": "m", "api_protocol": "openai", "api_base": fake_llm.openai_base, "model_name": "x",
             "allowed_groups": ["research", "nobody"]}
    assert_error(cast.root.post("/v1/models", model, format="json"), 400, "validation_error")
    assert not LLMModel.objects.filter(model_id="m").exists()
    res = cast.root.post("/v1/tools/mcp", {"mcpServers": {"demo": {**DEMO_STDIO, "allowed_groups": ["nobody"]}}}, format="json")
    assert_error(res, 400, "validation_error")
    assert cast.root.get("/v1/tools/mcp").json()["data"] == []


def test_registry_writes_take_the_django_permissions(cast: Cast, fake_llm: FakeLLMServer) -> None:
    model = {"model_id": "m", "api_protocol": "openai", "api_base": fake_llm.openai_base, "model_name": "x"}
    assert_error(cast.clerk.post("/v1/models", model, format="json"), 403, "permission_denied")
    assert_error(cast.alice.post("/v1/models", model, format="json"), 403, "permission_denied")
    assert cast.operator.post("/v1/models", model, format="json").status_code == 201
    assert_error(cast.clerk.patch("/v1/models/m", {"display_name": "M"}, format="json"), 403, "permission_denied")
    assert_error(cast.clerk.delete("/v1/models/m"), 403, "permission_denied")
    assert cast.operator.delete("/v1/models/m").status_code == 204
    template = {"name": "t", "content": "Hi {{name}}"}
    assert_error(cast.clerk.post("/v1/prompt-templates", template, format="json"), 403, "permission_denied")
    assert cast.operator.post("/v1/prompt-templates", template, format="json").status_code == 201


def test_whatever_runs_code_on_the_server_takes_run_code(cast: Cast, tmp_path: Path) -> None:
    by_path = {"tool_id": "f", "name": "f", "callable": "tests.tool_fns:add", "parameters": ADD_PARAMS}
    by_url = {"tool_id": "g", "name": "g", "endpoint": "http://127.0.0.1:9/hook", "parameters": ADD_PARAMS}
    assert_error(cast.operator.post("/v1/tools", by_path, format="json"), 403, "permission_denied")
    assert cast.operator.post("/v1/tools", by_url, format="json").status_code == 201  # runs nothing here
    assert_error(cast.operator.patch("/v1/tools/g", {"callable": "tests.tool_fns:add"}, format="json"), 403, "permission_denied")
    assert_error(cast.operator.patch("/v1/tools/bash", {"enabled": True}, format="json"), 403, "permission_denied")
    assert cast.operator.patch("/v1/tools/fetch", {"enabled": False}, format="json").status_code == 200
    assert_error(cast.operator.post("/v1/tools/mcp", {"mcpServers": {"demo": DEMO_STDIO}}, format="json"), 403,
                 "permission_denied")
    remote = {"mcpServers": {"far": {"url": "http://127.0.0.1:9/mcp", "transport": "streamable-http"}}}
    assert cast.operator.post("/v1/tools/mcp", remote, format="json").json()["servers"]["far"]["status"] == "error"
    scripted = skill_zip({"s/SKILL.md": SKILL_MD.replace(b"sums", b"s"), "s/scripts/run.py": b"print(1)"})
    assert_error(cast.operator.post("/v1/tools/skill", {"file": scripted}, format="multipart"), 403, "permission_denied")
    folder = tmp_path / "s2"
    (folder / "bin").mkdir(parents=True)
    (folder / "SKILL.md").write_bytes(SKILL_MD.replace(b"sums", b"s2"))
    (folder / "bin" / "tool").write_text("#!/bin/sh\n")
    (folder / "bin" / "tool").chmod(0o755)
    assert_error(cast.operator.post("/v1/tools/skill", {"path": str(folder)}, format="json"), 403, "permission_denied")
    plain = skill_zip({"p/SKILL.md": SKILL_MD.replace(b"sums", b"p")})
    assert cast.operator.post("/v1/tools/skill", {"file": plain}, format="multipart").status_code == 201
    assert_error(cast.operator.post("/v1/env", {"key": "X", "value": "1"}, format="json"), 403, "permission_denied")
    # Nothing was written by the refused requests; the superuser may do all of it.
    assert not Tool.objects.filter(tool_id__in=["f", "skill.s", "skill.s2"]).exists()
    assert cast.root.post("/v1/tools", by_path, format="json").status_code == 201
    assert cast.root.patch("/v1/tools/bash", {"enabled": True}, format="json").status_code == 200
    assert cast.root.post("/v1/tools/skill", {"path": str(folder)}, format="json").status_code == 201
