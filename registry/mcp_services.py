"""MCP server registration: store the config, connect through the shared manager, sync tools.

The API (``/v1/tools/mcp``) and the admin actions call these same services. Each worker process
configures its manager lazily from the database (``mcp_ensure_configured``), so a server
registered through one worker is usable from every other one.

A change made through one worker reaches the others over the bus (``core.bus``): a server
edited, reconnected or deleted anywhere is dropped by every worker (its connection closed, a
stdio child stopped) and reconfigured from the database on its next use there; an env-store
change drops the connections opened with the old value. ``mcp_reconcile`` repairs whatever a lost
message could leave behind (docs/design.md §1).

A server that announces a changed tool list (docs/mcp.md) has its tool rows re-synced by the
worker whose connection heard it; the rows are shared, so every worker offers the new list.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from core import bus, secrets
from core.errors import DomainError, InvalidRequest, NotFound
from inference.engine import MCPClientManager, ToolConfig, mcp_tool_configs, normalize_server_config, parse_mcp_servers
from inference.engine.envvars import Lookup
from inference.engine.mcp import MCPTool

from . import cache, live_settings
from .env_store import ENV_CHANGED, env_values
from .models import MCPServer, MCPStatus, Tool, ToolType

log = logging.getLogger(__name__)

MCP_CHANGED = "registry.mcp_changed"
TASK_REQUIRED_NOTE = "requires task-augmented execution, which agentsite does not offer; not registered"


def _manager() -> MCPClientManager:
    return MCPClientManager()


# What this worker last handed its manager, per server: (config, the ${VAR} values it uses).
# Comparing here spares every call a round trip to the manager's thread when nothing changed.
_configured: dict[str, tuple[dict[str, Any], tuple[str | None, ...]]] = {}


def _wanted(config: Mapping[str, Any], lookup: Lookup | None = None) -> tuple[dict[str, Any], dict[str, str | None]]:
    """The config as handed to the manager, and the current values of the ``${VAR}``s it uses
    (from ``lookup``, else read from the env store)."""
    config = _with_defaults(config)
    names = normalize_server_config(config).referenced_vars()
    return config, {name: lookup(name) for name in names} if lookup else env_values(names)


def _configure(name: str, config: Mapping[str, Any], lookup: Lookup | None = None) -> None:
    config, values = _wanted(config, lookup)
    env = tuple(values[v] for v in sorted(values))
    if _configured.get(name) != (config, env) or name not in _manager().servers():
        # Resolved here, in sync code: the manager expands ${VAR} on its own loop thread.
        _manager().configure(name, config, lookup=values.get)
        _configured[name] = (config, env)


def _forget(name: str) -> None:
    _configured.pop(name, None)
    _manager().remove(name)


def _announce(name: str, action: str) -> None:
    """Tell every other worker, once the change is committed, to drop its connection to ``name``."""
    transaction.on_commit(lambda: bus.broadcast({"type": MCP_CHANGED, "name": name, "action": action}))


@bus.on(MCP_CHANGED)
def _on_mcp_changed(message: dict[str, Any]) -> None:
    # The sender has applied the change itself (and may just have reconnected: keep that one).
    name = str(message.get("name", ""))
    if bus.is_own(message) or not name:
        return
    if name in _configured or name in _manager().servers():
        log.info("MCP %s: %s through another worker; dropping this worker's connection", name, message.get("action"))
        _forget(name)


@bus.on(ENV_CHANGED)
def _on_env_changed(message: dict[str, Any]) -> None:
    mcp_reconcile()


@bus.on_resync
def mcp_reconcile() -> list[str]:
    """Drop this worker's connections whose server is gone from the database, or whose stored
    config or ``${VAR}`` values differ from what the connection was configured with; the next use
    reconfigures. Returns the names dropped. Cheap when nothing is configured (no query)."""
    names = list(_configured)
    if not names:
        return []
    stored = dict(MCPServer.objects.filter(name__in=names).values_list("name", "config"))
    dropped = []
    for name in names:
        current = _configured.get(name)
        if current is None:
            continue
        if name in stored:
            config, values = _wanted(stored[name])
            if current == (config, tuple(values[v] for v in sorted(values))):
                continue
        log.info("MCP %s: stale on this worker (%s); dropping its connection", name,
                 "changed" if name in stored else "deleted")
        _forget(name)
        dropped.append(name)
    return dropped


def _with_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    # Every call has a timeout (docs/protocols.md C-4); a server's own "timeout_s" wins over the setting.
    # The setting is live (registry/live_settings.py): a change reconfigures, so reconnects, the
    # servers without their own on their next use.
    return {"timeout_s": live_settings.current()["MCP_CALL_TIMEOUT_S"], **config}


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


def _disabled(server: MCPServer) -> bool:
    return normalize_server_config(server.config).disabled


def _connect_all(servers: list[MCPServer]) -> dict[str, Any]:
    """Connect every server at once (the time of the slowest) and record each outcome; a
    ``disabled`` one is registered but not started."""
    outcomes: dict[str, list[MCPTool] | DomainError] = {}
    started = []
    for server in servers:
        try:
            _configure(server.name, server.config)
        except DomainError as exc:
            outcomes[server.name] = exc
            continue
        if not _disabled(server):
            started.append(server.name)
    outcomes.update(_manager().connect_many(started) if started else {})
    return {server.name: _record(server, outcomes.get(server.name)) for server in servers}


def _record(server: MCPServer, outcome: list[MCPTool] | DomainError | None) -> dict[str, Any]:
    """Store a connect outcome on the row (and the tools it listed); the API's answer for it."""
    now = timezone.now()
    rows = MCPServer.objects.filter(pk=server.pk)
    if outcome is None:  # disabled
        rows.update(status=MCPStatus.DISCONNECTED, last_error="", updated_at=now)
        return {"status": "disconnected", "disabled": True, "tool_ids": _tool_ids(server)}
    if isinstance(outcome, DomainError):
        rows.update(status=MCPStatus.ERROR, last_error=secrets.scrub(outcome.message), updated_at=now)
        return {"status": "error", "error": {"code": outcome.code, "message": outcome.message}}
    tool_ids = _sync_tools(server, mcp_tool_configs(server.name, outcome))
    rows.update(status=MCPStatus.CONNECTED, last_error="", last_connected_at=now, updated_at=now)
    out: dict[str, Any] = {"status": "connected", "tool_ids": tool_ids}
    if hidden := sorted(t.name for t in outcome if t.task_required):
        out["not_offered"] = {name: TASK_REQUIRED_NOTE for name in hidden}
    return out


def _tool_ids(server: MCPServer) -> list[str]:
    return sorted(Tool.objects.filter(server=server).values_list("tool_id", flat=True))


def mcp_connect(*, server: MCPServer) -> dict[str, Any]:
    """Connect (or reconnect) and re-sync tools; the row records the outcome."""
    return _connect_all([server])[server.name]


def mcp_register(*, servers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    rows = []
    for name, config in servers.items():
        before = MCPServer.objects.filter(name=name).values_list("config", flat=True).first()
        server, _ = MCPServer.objects.update_or_create(name=name, defaults={"config": dict(config)})
        if before != server.config:
            _announce(name, "changed")
        rows.append(server)
    return {"servers": _connect_all(rows)}


def mcp_tools_changed(name: str) -> None:
    """A server said its tools changed (called by the manager off its loop, in a worker thread):
    list them again and make the rows match."""
    try:
        server = MCPServer.objects.filter(name=name).first()
        if server is not None:
            _sync_tools(server, mcp_tool_configs(name, _manager().list_tools(name)))
            log.info("MCP %s: tool list changed; tools re-synced", name)
    except Exception:  # a failed re-sync leaves the old rows; the next connect repairs them
        log.exception("MCP %s: re-syncing the changed tool list failed", name)
    finally:
        close_old_connections()


def install() -> None:
    """Hand the manager this server's settings and its tool-change hook (AppConfig.ready)."""
    manager = _manager()
    manager.max_message_bytes = int(settings.AGENTSITE["MCP_MAX_MESSAGE_MB"] * 1024 * 1024)
    manager.on_tools_changed = mcp_tools_changed


def mcp_reconnect(*, server: MCPServer) -> dict[str, Any]:
    _announce(server.name, "reconnected")  # the other workers restart theirs meanwhile
    _forget(server.name)  # drop the old connection (and child process) first
    return mcp_connect(server=server)


def mcp_delete(*, name: str) -> None:
    server = MCPServer.objects.filter(name=name).first()
    if server is None:
        raise NotFound(f"No MCP server named {name!r}.", code="not_found")
    server.delete()  # its tools go with it (CASCADE)
    _announce(name, "deleted")  # sent at once outside a transaction: the others stop theirs meanwhile
    _forget(name)


def mcp_ensure_configured(tools: Iterable[ToolConfig]) -> None:
    """Hand this worker's manager the stored config of every MCP server ``tools`` use.

    Configs and ``${VAR}`` values come from the registry snapshot, and unchanged ones are
    skipped: no query, and no trip to the manager's thread.
    """
    names = {t.server for t in tools if t.tool_type == "mcp" and t.server}
    if not names:
        return
    registry = cache.snapshot()
    for name in sorted(names):
        config = registry.servers.get(name)
        if config is not None:
            _configure(name, config, registry.env_lookup)
