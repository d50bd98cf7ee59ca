"""A real worker resolves runs from its in-memory registry snapshot, and follows every change
made by another process at once (without Redis: the stamp file in the shared data dir; the
PostgreSQL + Redis pass runs this over the bus)."""

from __future__ import annotations

import httpx
import pytest
from django.contrib.auth.models import Group

from registry.env_store import env_set
from registry.models import EnvVar
from tests.e2e.conftest import LiveServer
from tests.factories import ADD_PARAMS, LLMModelFactory, ToolFactory, UserFactory, bearer, save_fields
from tests.fakes.fake_llm import FakeLLMServer

pytestmark = pytest.mark.e2e


def infer(server: LiveServer, headers: dict[str, str], **body: object) -> httpx.Response:
    return httpx.post(server.url + "/v1/infer", json={"model_id": "rc", "text": "hi", **body}, headers=headers, timeout=30)


def code(res: httpx.Response) -> str | None:
    return res.json()["error"]["code"] if res.status_code >= 400 else None


def test_a_worker_follows_registry_changes_made_by_another_process(live_server_proc: LiveServer, transactional_db,
                                                                   fake_llm: FakeLLMServer) -> None:
    # This test process stands for another worker: its writes reach the server only as a
    # change announcement, never through the server's own code.
    user = UserFactory(username="rc-user")
    headers = bearer(user)
    model = LLMModelFactory(model_id="rc", fake=fake_llm, api_key="first")

    fake_llm.script("ok")
    assert infer(live_server_proc, headers).status_code == 200
    assert fake_llm.last_request().headers["authorization"] == "Bearer first"

    # an edit, and a ${VAR} it now uses, set afterwards
    save_fields(model, api_key="${RC_KEY}")
    env_set(key="RC_KEY", value="second", is_secret=True)
    fake_llm.script("ok")
    assert infer(live_server_proc, headers).status_code == 200
    assert fake_llm.last_request().headers["authorization"] == "Bearer second"
    EnvVar.objects.filter(key="RC_KEY").get().delete()
    fake_llm.script("ok")
    assert infer(live_server_proc, headers).status_code == 200
    assert "authorization" not in fake_llm.last_request().headers

    # access: restricted to a group the user is not in, then the user joins, then leaves
    group = Group.objects.create(name="rc-group")
    model.allowed_groups.add(group)
    assert code(infer(live_server_proc, headers)) == "model_not_found"
    user.groups.add(group)
    fake_llm.script("ok")
    assert infer(live_server_proc, headers).status_code == 200
    user.groups.remove(group)
    assert code(infer(live_server_proc, headers)) == "model_not_found"
    model.allowed_groups.clear()

    # a tool: usable, then disabled, then restricted through its own groups
    tool = ToolFactory(tool_id="rc.add", parameters=ADD_PARAMS)
    fake_llm.script("ok")
    assert infer(live_server_proc, headers, tool_ids=["rc.add"]).status_code == 200
    save_fields(tool, enabled=False)
    assert code(infer(live_server_proc, headers, tool_ids=["rc.add"])) == "tool_not_found"
    save_fields(tool, enabled=True)
    tool.allowed_groups.add(group)
    assert code(infer(live_server_proc, headers, tool_ids=["rc.add"])) == "tool_not_found"
    group.delete()  # its memberships and grants go with it: the tool is open again
    fake_llm.script("ok")
    assert infer(live_server_proc, headers, tool_ids=["rc.add"]).status_code == 200

    # deleted
    model.delete()
    assert code(infer(live_server_proc, headers)) == "model_not_found"
