"""/mcp: the site as an MCP server (streamable HTTP, the official SDK's server side).

The ASGI guard has authenticated the API key before a request reaches this app (401 otherwise)
and put the caller in ``scope["agentsite.user"]``; the SDK binds each MCP session to that
caller, so a session id is useless with another key. ``tools/list`` offers the caller's tools
(by ``tool_id``, characters an MCP client may refuse replaced) and agents (``agent_<name>``);
``tools/call`` runs a tool as ``/v1/tools/call`` does and an agent as ``/v1/infer`` does, with
the same access checks, quotas and usage records. When what a live session may list changes,
it gets ``notifications/tools/list_changed``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from django.db.models.signals import m2m_changed, post_delete, post_save
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.session import ServerSession
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged

from agents.models import Agent
from agents.selectors import agents_for_user
from core import bus
from core.db import db_async
from core.errors import DomainError
from core.secrets import scrub, scrub_data
from inference.engine import AGENT_PARAMETERS, Runtime, ToolConfig, ToolResult
from registry.models import MCPServer, Skill, Tool
from registry.selectors import tool_to_config, tools_enabled

from . import services
from .lifecycle import run_begin

log = logging.getLogger(__name__)

CHANGED = "mcp_endpoint.tools_changed"
NOTIFY_TIMEOUT_S = 5.0
MAX_WATCHED = 10_000  # as many as the SDK keeps sessions open by default
UNKNOWN_TOOL = "No tool named {name!r}."
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def mcp_name(tool_id: str) -> str:
    """A name every MCP client accepts (``^[A-Za-z0-9_-]{1,64}$``)."""
    return _UNSAFE.sub("_", tool_id)[:64] or "tool"


@dataclass
class Catalog:
    """What one caller may call, by MCP name: registry tools and agents."""

    tools: dict[str, ToolConfig] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)

    def listing(self) -> list[types.Tool]:
        out = [types.Tool(name=name, description=t.description or t.name, input_schema=dict(t.parameters))
               for name, t in self.tools.items()]
        out += [types.Tool(name=name, description=a.description or f"The agent {a.name!r}.", input_schema=AGENT_PARAMETERS)
                for name, a in self.agents.items()]
        return out

    def names(self) -> frozenset[str]:
        return frozenset(self.tools) | frozenset(self.agents)


def catalog_for(user: Any) -> Catalog:
    """The caller's tools and agents (sync: reads the database). Agents run as agents here, not
    as ``agent.`` tools, so they appear once."""
    catalog = Catalog()
    taken: set[str] = set()
    for row in tools_enabled(user=user):
        name, n = mcp_name(row.tool_id), 2
        while name in taken:
            name, n = f"{mcp_name(row.tool_id)[:60]}_{n}", n + 1
        taken.add(name)
        catalog.tools[name] = tool_to_config(row)
    for agent in agents_for_user(user=user):
        name = mcp_name(f"agent_{agent.name}")
        if name not in taken:
            taken.add(name)
            catalog.agents[name] = agent
    return catalog


def _user(ctx: ServerRequestContext[Any, Any]) -> Any:
    request = ctx.request
    scope = getattr(request, "scope", None) or {}
    user = scope.get("agentsite.user")
    if user is None:  # the guard answers 401 before this app runs; never serve without a caller
        raise DomainError("Authentication credentials were not provided.", code="not_authenticated", status=401)
    return user


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=scrub(text))], is_error=True)


def _result(result: ToolResult) -> types.CallToolResult:
    """Our result as MCP's (its content items already have MCP's shapes), scrubbed as on /v1:
    a tool's output may echo a secret."""
    structured = result.structured if isinstance(result.structured, dict) else None
    return types.CallToolResult.model_validate(scrub_data(
        {"content": list(result.content), "structuredContent": structured, "isError": result.is_error}))


class Watchers:
    """Live MCP sessions of this worker with the names they last listed, for list_changed."""

    def __init__(self) -> None:
        # By MCP session id: the latest request's proxy of each session, its caller, its names.
        self.sessions: dict[str, tuple[ServerSession, Any, frozenset[str]]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def listed(self, ctx: ServerRequestContext[Any, Any], user: Any, names: frozenset[str]) -> None:
        headers = getattr(ctx.request, "headers", None) or {}
        key = headers.get("mcp-session-id")
        if not key:  # stateless or newest-revision requests: those listen through listen_bus
            return
        self.sessions.pop(key, None)
        self.sessions[key] = (ctx.session, user, names)
        while len(self.sessions) > MAX_WATCHED:  # the oldest first: a client that vanished never says so
            self.sessions.pop(next(iter(self.sessions)))

    def poke(self) -> None:
        """From any thread: look again at every live session (on the loop that serves them)."""
        if self.loop is not None and not self.loop.is_closed():
            asyncio.run_coroutine_threadsafe(self.recheck(), self.loop)

    async def recheck(self) -> None:
        # A listen stream's caller is not known here: it is told to look again on any change
        # (it learns only that something changed, never what).
        await listen_bus.publish(ToolsListChanged())
        await asyncio.gather(*(self._recheck(key, *watched) for key, watched in list(self.sessions.items())))

    async def _recheck(self, key: str, session: ServerSession, user: Any, names: frozenset[str]) -> None:
        now = (await db_async(catalog_for)(user)).names()
        if now == names:
            return
        self.sessions[key] = (session, user, now)
        try:
            # A session whose client went away may never take the message: it is forgotten then.
            await asyncio.wait_for(session.send_tool_list_changed(), NOTIFY_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - any failure means the same: nobody is listening
            self.sessions.pop(key, None)


watchers = Watchers()


async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    user = _user(ctx)
    catalog = await db_async(catalog_for)(user)
    watchers.listed(ctx, user, catalog.names())
    return types.ListToolsResult(tools=catalog.listing())


async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    user = _user(ctx)
    arguments: Mapping[str, Any] = params.arguments or {}
    catalog = await db_async(catalog_for)(user)
    try:
        if params.name in catalog.agents:
            return await _run_agent(user, catalog.agents[params.name].name, arguments)
        tool = catalog.tools.get(params.name)
        if tool is None:
            return _error(UNKNOWN_TOOL.format(name=params.name))
        return await _run_tool(user, tool.tool_id, arguments)
    except DomainError as exc:  # refused as /v1 would refuse it (bad arguments, quota, ...)
        return _error(exc.message)


async def _run_tool(user: Any, tool_id: str, arguments: Mapping[str, Any]) -> types.CallToolResult:
    """What ``/v1/tools/call`` runs: the tool as the caller may see it, in their own folder."""

    def find_tool() -> tuple[ToolConfig, Runtime]:
        return services.tool_for_call(data={"tool_id": tool_id}, user=user), services.runtime_for(user)

    tool, runtime = await db_async(find_tool)()
    context = runtime.tool_context(None, owner=services.scratch_owner(user))
    return _result(await runtime.acall_tool(tool, arguments, context=context))


async def _run_agent(user: Any, name: str, arguments: Mapping[str, Any]) -> types.CallToolResult:
    """What ``/v1/infer`` with ``{"agent": name, "text": input}`` runs; its final text is the result."""
    text = arguments.get("input")
    if not isinstance(text, str):
        return _error("input must be a string.")
    run = await db_async(run_begin)(user=user, data={"agent": name, "text": text})
    result = await run.runtime.ainfer(run.prepared, hooks=run.hooks, control=run.control)
    return types.CallToolResult(content=[types.TextContent(type="text", text=scrub(result.content))],
                                is_error=result.finish_reason == "error")


class _Server(Server[Any]):
    """Announces ``tools.listChanged``: the SDK's default options say nothing changes."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> Any:
        options = notification_options or NotificationOptions(tools_changed=True)
        return super().create_initialization_options(options, experimental_capabilities, extensions)


# Newest-revision clients (2026-07-28) hear of changes on a subscriptions/listen stream instead.
listen_bus = InMemorySubscriptionBus()
server = _Server("agentsite", on_list_tools=list_tools, on_call_tool=call_tool,
                 on_subscriptions_listen=ListenHandler(listen_bus))


class MCPEndpoint:
    """The ASGI app of ``/mcp``: the SDK's session manager, started on first use in the serving
    loop (Daphne sends no ASGI lifespan events) and kept for the life of the process."""

    def __init__(self) -> None:
        self.manager: StreamableHTTPSessionManager | None = None
        self._started: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def _run(self, manager: StreamableHTTPSessionManager, started: asyncio.Event) -> None:
        async with manager.run():
            started.set()
            await asyncio.Event().wait()  # until the process ends

    async def _ensure(self) -> StreamableHTTPSessionManager:
        if self.manager is None or self._started is None:
            self.manager = StreamableHTTPSessionManager(app=server, json_response=False)
            self._started = asyncio.Event()
            self._task = asyncio.create_task(self._run(self.manager, self._started))
        await self._started.wait()
        return self.manager

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        manager = await self._ensure()
        watchers.loop = asyncio.get_running_loop()
        user = scope.get("agentsite.user")
        if user is not None:  # the session belongs to this caller: another key gets a 404 for it
            token = AccessToken(token="", client_id=f"user:{user.pk}", scopes=[])
            scope = {**scope, "user": AuthenticatedUser(token)}
        await manager.handle_request(scope, receive, send)


endpoint = MCPEndpoint()


# ---- telling live sessions their list changed ------------------------------------------------


def _announce(**kwargs: Any) -> None:
    from django.db import transaction

    transaction.on_commit(lambda: bus.broadcast({"type": CHANGED}))


@bus.on(CHANGED)
def _changed(message: dict[str, Any]) -> None:
    watchers.poke()


@bus.on_resync
def _resync() -> None:  # a lost message costs at most one resync interval
    watchers.poke()


for _model in (Tool, Agent, MCPServer, Skill):
    post_save.connect(_announce, sender=_model, dispatch_uid=f"mcp-endpoint-save-{_model.__name__}")
    post_delete.connect(_announce, sender=_model, dispatch_uid=f"mcp-endpoint-delete-{_model.__name__}")
m2m_changed.connect(_announce, dispatch_uid="mcp-endpoint-m2m")  # groups of a resource or a user
