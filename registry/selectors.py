"""Registry reads: ORM rows turned into the engine's configs (``${VAR}`` resolved on the way).

Every read on behalf of a caller takes the ``user`` and applies ``registry.access``'s rule: what
the caller may not use is absent, so it answers exactly like an unknown id. What a run resolves
comes from the in-memory snapshot (``registry.cache``); listings query the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet

from inference.engine import ModelConfig, ModelNotFound, ToolConfig, ToolNotFound, expand_vars
from inference.engine.envvars import Lookup

from . import access, cache
from .env_store import env_lookup
from .models import LLMModel, Tool

MODEL_NOT_FOUND = "No model with id {model_id!r}."
TOOL_NOT_FOUND = "No enabled tool with id {tool_id!r}."
MCP_TOOL_NOT_FOUND = "No enabled tool {tool!r} on MCP server {server!r}."


def model_to_config(row: LLMModel, lookup: Lookup = env_lookup) -> ModelConfig:
    return ModelConfig(
        model_id=row.model_id,
        api_protocol=row.api_protocol,
        api_base=expand_vars(row.api_base, lookup),
        model_name=row.model_name,
        api_key=expand_vars(row.api_key, lookup) or None,
        display_name=row.display_name,
        context_window=row.context_window,
        options=dict(row.options or {}),
        supports_vision=row.supports_vision,
        supports_audio=row.supports_audio,
        timeout_s=row.timeout_s,
        enabled=row.enabled,
        max_output_tokens=row.max_output_tokens,
        tool_call_format="auto" if row.tool_call_format == "auto" else "native",
    )


def model_config_get(*, model_id: str, user: Any) -> ModelConfig:
    registry = cache.snapshot()
    found = registry.models.get(model_id)
    if found is None or not registry.admits(user, (found.groups,) if found.groups else ()):
        raise ModelNotFound(MODEL_NOT_FOUND.format(model_id=model_id))
    return model_to_config(found.row, registry.env_lookup)


def models_enabled(*, user: Any) -> QuerySet[LLMModel]:
    return access.visible_models(user).filter(enabled=True).order_by("model_id")


def tool_to_config(row: Tool, lookup: Lookup = env_lookup) -> ToolConfig:
    return ToolConfig(
        tool_id=row.tool_id,
        tool_type=row.tool_type,  # type: ignore[arg-type]  # the database constraint keeps it a ToolType
        name=row.name,
        description=row.description,
        parameters=row.parameters or {"type": "object", "properties": {}},
        enabled=row.enabled,
        callable=row.callable or None,
        endpoint=expand_vars(row.endpoint, lookup) or None,
        server=row.server.name if row.server else None,
        remote_name=row.remote_name or None,
        skill=row.skill.name if row.skill else None,
        skill_path=row.skill.path if row.skill else None,
        timeout_s=row.timeout_s,
    )


def _tools(user: Any) -> QuerySet[Tool]:
    return access.visible_tools(user, Tool.objects.select_related("server", "skill"))


def tool_configs_get(*, tool_ids: Iterable[str], user: Any) -> list[ToolConfig]:
    """Enabled tools in the order asked; unknown (or disabled, or not the user's) ids -> ToolNotFound naming them."""
    wanted = list(dict.fromkeys(tool_ids))
    if not wanted:
        return []
    registry = cache.snapshot()
    rows = {t: found for t in wanted if (found := registry.tools.get(t)) is not None and registry.admits(user, found.gates)}
    missing = [t for t in wanted if t not in rows]
    if missing:
        raise ToolNotFound(TOOL_NOT_FOUND.format(tool_id=missing[0]), detail={"missing": missing})
    return [tool_to_config(rows[t].row, registry.env_lookup) for t in wanted]


def tool_configs_all(*, user: Any) -> list[ToolConfig]:
    registry = cache.snapshot()
    return [tool_to_config(t.row, registry.env_lookup) for t in registry.tools.values() if registry.admits(user, t.gates)]


def tool_config_on_server(*, server: str, tool: str, user: Any) -> ToolConfig:
    """An enabled MCP tool by its server's name and its name on that server."""
    registry = cache.snapshot()
    found = registry.tools.get(registry.mcp_tools.get((server, tool), ""))
    if found is None or not registry.admits(user, found.gates):
        raise ToolNotFound(MCP_TOOL_NOT_FOUND.format(tool=tool, server=server))
    return tool_to_config(found.row, registry.env_lookup)


def tools_enabled(*, user: Any) -> QuerySet[Tool]:
    return _tools(user).filter(enabled=True).order_by("tool_type", "tool_id")
