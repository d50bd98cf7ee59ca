"""/mcp through the official ``mcp`` client against a live server: API-key auth, the caller's
tools and agents listed and run as on /v1, and list_changed when the set changes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import httpx2
import mcp_types
import pytest
from django.contrib.auth.models import Group
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agents.models import Agent
from tests.e2e.conftest import LiveServer, eventually
from tests.factories import ADD_PARAMS, LLMModelFactory, StaffFactory, ToolFactory, UserFactory, api_key, bearer
from tests.fakes.fake_llm import FakeLLMServer, Reply
from usage.models import UsageRecord

pytestmark = pytest.mark.e2e


@pytest.fixture
def key(transactional_db, fake_llm: FakeLLMServer) -> str:
    LLMModelFactory(model_id="m", fake=fake_llm, model_name="m", timeout_s=10)
    ToolFactory(tool_id="math.add", description="Add two integers.", parameters=ADD_PARAMS)
    hidden = ToolFactory(tool_id="secret.add", parameters=ADD_PARAMS)
    hidden.allowed_groups.add(Group.objects.create(name="insiders"))
    Agent.objects.create(name="adder", model_id="m", tool_ids=["math.add"], description="Adds numbers.")
    return api_key(UserFactory(username="mcp-user"))[1]


def _client(server: LiveServer, key: str, mode: str, **kwargs: Any) -> tuple[httpx2.AsyncClient, Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return http, Client(streamable_http_client(server.url + "/mcp", http_client=http), mode=mode, **kwargs)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_the_callers_tools_and_agents_are_listed_and_run(live_server_proc: LiveServer, key: str, fake_llm: FakeLLMServer,
                                                         mode: str) -> None:
    fake_llm.script([Reply(tool_calls=[("add", {"a": 1, "b": 2})]), Reply(content="It is 3.")], model="m")

    async def go() -> tuple[list[mcp_types.Tool], Any, Any, Any]:
        http, client = _client(live_server_proc, key, mode)
        async with http, client:
            tools = (await client.list_tools()).tools
            added = await client.call_tool("math_add", {"a": 2, "b": 3})
            bad = await client.call_tool("math_add", {"a": "two"})
            agent = await client.call_tool("agent_adder", {"input": "1 + 2?"})
        return tools, added, bad, agent

    tools, added, bad, agent = asyncio.run(go())
    by_name = {t.name: t for t in tools}
    assert set(by_name) >= {"math_add", "agent_adder"} and "secret_add" not in by_name
    assert by_name["agent_adder"].input_schema["required"] == ["input"]
    assert by_name["math_add"].input_schema == ADD_PARAMS
    assert added.is_error is False and added.content[0].text == "5"
    assert bad.is_error is True and "Invalid arguments" in bad.content[0].text
    assert agent.is_error is False and agent.content[0].text == "It is 3."
    assert eventually(lambda: UsageRecord.objects.filter(agent="adder").count() == 2)  # metered as on /v1


def test_no_key_or_a_bad_key_is_refused(live_server_proc: LiveServer, transactional_db) -> None:
    from django.conf import settings
    from django.test import Client as DjangoClient

    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    assert httpx.post(live_server_proc.url + "/mcp", json=body).status_code == 401
    res = httpx.post(live_server_proc.url + "/mcp", json=body, headers={"Authorization": "Bearer ask_nope"})
    assert res.status_code == 401 and "ask_nope" not in res.text
    # A browser's session cookie is no credential here (no CSRF check): another site can't borrow it.
    browser = DjangoClient()
    browser.force_login(UserFactory(username="browser-user"))
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    assert httpx.get(live_server_proc.url + "/v1/agents", headers={"Cookie": cookie}).status_code == 200  # a real session
    for path in ("/mcp", "/openai/v1/models"):
        assert httpx.post(live_server_proc.url + path, json=body, headers={"Cookie": cookie}).status_code == 401


def _disable_add(server: LiveServer) -> None:
    """Through the server's own API, as staff: the worker holding the MCP session sees the change."""
    staff = bearer(StaffFactory(username="ops"))
    res = httpx.patch(server.url + "/v1/tools/math.add", json={"enabled": False}, headers=staff, timeout=30)
    assert res.status_code == 200, res.text


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_list_changed_is_sent_when_the_set_changes(live_server_proc: LiveServer, key: str, mode: str) -> None:
    async def go() -> list[str]:
        changed = asyncio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, mcp_types.ToolListChangedNotification):
                changed.set()

        http, client = _client(live_server_proc, key, mode, message_handler=on_message)
        async with http, client:
            await client.list_tools()
            if mode == "auto":  # the newest revision: changes arrive on a listen stream
                async with client.listen(tools_list_changed=True) as events:
                    await asyncio.to_thread(_disable_add, live_server_proc)
                    await asyncio.wait_for(events.__anext__(), 15)
            else:  # the handshake era: a notification on the session's stream
                await asyncio.to_thread(_disable_add, live_server_proc)
                await asyncio.wait_for(changed.wait(), 15)
            return [t.name for t in (await client.list_tools()).tools]

    names = asyncio.run(go())
    assert "math_add" not in names and "agent_adder" in names
