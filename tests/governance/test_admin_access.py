"""The admin: group pickers on the registry pages, what a group may use on its page, and the
same staff rights as the API (model permissions, registry.run_code)."""

from __future__ import annotations

import json

from django.contrib.auth.models import Group
from django.test import Client

from registry.models import LLMModel, MCPServer, Tool
from registry.staff_rights import registry_codenames
from tests.factories import LLMModelFactory, StaffFactory, ToolFactory
from tests.mcp_servers.fixtures import DEMO_STDIO


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_registry_pages_have_a_group_picker_and_the_group_page_lists_what_it_may_use(admin_client, db) -> None:
    research = Group.objects.create(name="research")
    model = LLMModelFactory(model_id="deep")
    model.allowed_groups.add(research)
    ToolFactory(tool_id="open_tool")
    for page in ("/admin/registry/llmmodel/add/", "/admin/registry/tool/add/", "/admin/registry/mcpserver/add/"):
        html = admin_client.get(page).content.decode()
        assert 'type="checkbox" name="allowed_groups"' in html, page  # one box per group
    html = admin_client.get(f"/admin/auth/group/{research.pk}/change/").content.decode()
    assert "May use" in html and f"/admin/registry/llmmodel/{model.pk}/change/" in html and ">deep</a>" in html
    assert "open_tool" not in html  # open to everyone: not this group's


def test_admin_writes_take_the_same_rights_as_the_api(db) -> None:
    clerk = logged_in(StaffFactory(username="clerk", rights=()))
    operator = logged_in(StaffFactory(username="operator", rights=[r for r in registry_codenames() if r[1] != "run_code"]))
    model = {"model_id": "m", "api_protocol": "openai", "api_base": "http://127.0.0.1:9/v1", "model_name": "x",
             "timeout_s": "300", "tool_call_format": "native", "max_output_tokens": "4096", "options": "{}"}
    assert clerk.post("/admin/registry/llmmodel/add/", model).status_code == 403
    assert operator.post("/admin/registry/llmmodel/add/", model).status_code == 302
    assert LLMModel.objects.filter(model_id="m").exists()
    res = operator.post("/admin/registry/mcpserver/add/", {"name": "demo", "config": json.dumps(DEMO_STDIO)})
    assert res.status_code == 403 and not MCPServer.objects.exists()
    bash = Tool.objects.get(tool_id="bash")
    form = {"tool_id": "bash", "tool_type": "builtin", "name": "bash", "description": bash.description,
            "parameters": json.dumps(bash.parameters), "enabled": "on", "remote_name": ""}
    assert operator.post(f"/admin/registry/tool/{bash.pk}/change/", form).status_code == 403
    assert Tool.objects.get(tool_id="bash").enabled is False
