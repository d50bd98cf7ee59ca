"""Database-backed sources for the server's Runtime (the SDK uses the in-memory registries).

The engine resolves models, tools and templates only through these interfaces, so the SDK and
the server share one preparation path (``Runtime.prepare``). Models and tools are resolved as
one caller may see them (``registry.access``): what the caller may not use is not found.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agents.selectors import agent_tool_configs
from inference.engine import AGENT_PREFIX, ModelConfig, ToolConfig
from registry import live_settings
from registry import selectors as registry
from registry.mcp_services import mcp_ensure_configured
from templates_app.services import template_get


class DbModels:
    """The models ``user`` may run (``None``: nobody's view, so nothing is found)."""

    def __init__(self, user: Any) -> None:
        self.user = user

    def get(self, model_id: str) -> ModelConfig:
        return registry.model_config_get(model_id=model_id, user=self.user)


class DbTools:
    """The tools ``user`` may use (``None``: nothing); a skill's tools are looked up here too."""

    def __init__(self, user: Any) -> None:
        self.user = user

    def get_many(self, tool_ids: Iterable[str]) -> list[ToolConfig]:
        wanted = list(tool_ids)
        # ``agent.<name>`` runs another agent (inference.agent_runs); the rest are registry tools.
        # Its timeout is a live setting: read (from the snapshot) only when an agent is asked for.
        timeout_s = live_settings.current()["AGENT_TIMEOUT_S"] if any(t.startswith(AGENT_PREFIX) for t in wanted) else None
        agents = agent_tool_configs(tool_ids=wanted, user=self.user, timeout_s=timeout_s)
        tools = registry.tool_configs_get(tool_ids=[t for t in wanted if t not in agents], user=self.user)
        # This worker's MCP manager learns the stored config of every server these tools use.
        mcp_ensure_configured(tools)
        if not agents:
            return tools
        by_id = {**{t.tool_id: t for t in tools}, **agents}
        return [by_id[t] for t in dict.fromkeys(wanted)]

    def all(self) -> list[ToolConfig]:
        return registry.tool_configs_all(user=self.user)

    def on_server(self, server: str, tool: str) -> ToolConfig:
        config = registry.tool_config_on_server(server=server, tool=tool, user=self.user)
        mcp_ensure_configured([config])
        return config


class DbTemplates:
    def get_content(self, name: str) -> str:
        return template_get(id_or_name=name).content
