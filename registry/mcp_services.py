"""MCP server registration: store the config, connect through the shared manager, sync tools.

The API (``/v1/tools/mcp``) and the admin actions call these same services. Each worker process
configures its manager lazily from the database (``mcp_ensure_configured``), so a server
registered through one worker is usable from every other one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import DomainError, InvalidRequest, NotFound
from inference.engine import MCPClientManager, ToolConfig, mcp_tool_configs, normalize_server_config, parse_mcp_servers

from .env_store import env_values
from .models import MCPServer, MCPStatus, Tool, ToolType

log = logging.getLogger(__name__)


def _manager() -> MCPClientManager:
    return MCPClientManager()


# What this worker last handed its manager, per server: (config, the ${VAR} values it uses).
# Comparing here spares every call a round trip to the manager's thread when nothing changed.
_configured: dict[str, tuple[dict[str, Any], tuple[str | None, ...]]] = {}


def _configure(name: str, config: Mapping[str, Any]) -> None:
    config = _with_defaults(config)
    values = env_values(normalize_server_config(config).referenced_vars())
    env = tuple(values[v] for v in sorted(values))
    if _configured.get(name) != (config, env) or name not in _manager().servers():
        # Resolved here, in sync code: the manager expands ${VAR} on its own loop thread.
        _manager().configure(name, config, lookup=values.get)
        _configured[name] = (config, env)


def _forget(name: str) -> None:
    _configured.pop(name, None)
    _manager().remove(name)


def _with_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    # Every call has a timeout (docs/protocols.md C-4); a server's own "timeout_s" wins over the setting.
    return {"timeout_s": settings.AGENTSITE["MCP_CALL_TIMEOUT_S"], **config}


def mcp_parse_body(body: Any) -> dict[str, dict[str, Any]]:
    """Validate every server config up front: a malformed entry rejects the whole request (400)
    and nothing is written; connection failures later are per server."""
    servers = parse_mcp_servers(body)
    problems = {}
    for name, config in servers.items():
        try:
            normalize_server_config(config)
        except InvalidRequest as exc:
            problems[name] = exc.message
    if problems:
        first = next(iter(problems.items()))
        raise InvalidRequest(f"{first[0]}: {first[1]}", detail={"servers": problems}, code="invalid_mcp_config")
    return servers


@transaction.atomic
def _sync_tools(server: MCPServer, configs: Iterable[ToolConfig]) -> list[str]:
    """Make the server's tool rows match what it lists now; keeps admins' enabled flags."""
    configs = list(configs)
    wanted = {c.tool_id for c in configs}
    Tool.objects.filter(server=server).exclude(tool_id__in=wanted).delete()
    for c in configs:
        Tool.objects.update_or_create(
            tool_id=c.tool_id,
            defaults={"tool_type": ToolType.MCP, "name": c.name, "description": c.description, "parameters": dict(c.parameters),
                      "server": server, "remote_name": c.remote_name or "", "callable": "", "endpoint": "", "skill": None},
        )
    return sorted(wanted)


def mcp_connect(*, server: MCPServer) -> dict[str, Any]:
    """Connect (or reconnect) and re-sync tools; the row records the outcome."""
    try:
        _configure(server.name, server.config)
        tools = _manager().connect(server.name)
    except DomainError as exc:
        MCPServer.objects.filter(pk=server.pk).update(status=MCPStatus.ERROR, last_error=exc.message, updated_at=timezone.now())
        return {"status": "error", "error": {"code": exc.code, "message": exc.message}}
    tool_ids = _sync_tools(server, mcp_tool_configs(server.name, tools))
    now = timezone.now()
    MCPServer.objects.filter(pk=server.pk).update(
        status=MCPStatus.CONNECTED, last_error="", last_connected_at=now, updated_at=now
    )
    return {"status": "connected", "tool_ids": tool_ids}


def mcp_register(*, servers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    out = {}
    for name, config in servers.items():
        server, _ = MCPServer.objects.update_or_create(name=name, defaults={"config": dict(config)})
        out[name] = mcp_connect(server=server)
    return {"servers": out}


def mcp_reconnect(*, server: MCPServer) -> dict[str, Any]:
    _forget(server.name)  # drop the old connection (and child process) first
    return mcp_connect(server=server)


def mcp_delete(*, name: str) -> None:
    server = MCPServer.objects.filter(name=name).first()
    if server is None:
        raise NotFound(f"No MCP server named {name!r}.", code="not_found")
    _forget(name)
    server.delete()  # its tools go with it (CASCADE)


def mcp_ensure_configured(tools: Iterable[ToolConfig]) -> None:
    """Hand this worker's manager the stored config of every MCP server ``tools`` use.

    Unchanged configs (and ``${VAR}`` values) are skipped, so this costs one query.
    """
    names = {t.server for t in tools if t.tool_type == "mcp" and t.server}
    if not names:
        return
    for server in MCPServer.objects.filter(name__in=names).only("name", "config"):
        _configure(server.name, server.config)
