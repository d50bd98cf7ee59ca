"""Agent reads: lookups by name for a caller, and agents as the engine's tool configs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet

from core.errors import NotFound
from inference.engine import AGENT_PREFIX, ToolConfig, ToolNotFound, agent_tool_config
from registry import cache
from registry.access import allowed

from .models import Agent

AGENT_NOT_FOUND = "No agent named {name!r}."
AGENT_TOOL_NOT_FOUND = "No enabled tool with id {tool_id!r}."


class AgentNotFound(NotFound):
    code = "agent_not_found"


def agents_for_user(*, user: Any) -> QuerySet[Agent]:
    """The enabled agents ``user`` may run (``allowed_groups`` as for every registry)."""
    return allowed(user, Agent.objects.filter(enabled=True)).order_by("name")


def agent_get_for_user(*, name: str, user: Any) -> Agent:
    """An enabled agent ``user`` may run; any other name is ``404 agent_not_found``."""
    agent = agents_for_user(user=user).filter(name=name).first()
    if agent is None:
        raise AgentNotFound(AGENT_NOT_FOUND.format(name=name))
    return agent


def agent_name_known(name: str) -> bool:
    """Whether an enabled agent, anyone's, has this name (sync; no query once the registry
    snapshot holds the names): a name that is not one needs no lookup for the caller."""
    names = cache.snapshot().part("agent_names", lambda: frozenset(
        Agent.objects.filter(enabled=True).values_list("name", flat=True)))
    return name in names


def agent_name_taken(name: str) -> str | None:
    return "agent" if Agent.objects.filter(name=name).exists() else None


def agent_tool_configs(*, tool_ids: Iterable[str], user: Any, timeout_s: float | None = None) -> dict[str, ToolConfig]:
    """The ``agent.<name>`` tools among ``tool_ids`` that ``user`` may run, by tool id; any other
    ``agent.`` id is ``404 tool_not_found``, as an unknown tool."""
    names = [t.removeprefix(AGENT_PREFIX) for t in tool_ids if t.startswith(AGENT_PREFIX)]
    if not names:
        return {}
    rows = {a.name: a for a in agents_for_user(user=user).filter(name__in=names)}
    missing = [f"{AGENT_PREFIX}{n}" for n in names if n not in rows]
    if missing:
        raise ToolNotFound(AGENT_TOOL_NOT_FOUND.format(tool_id=missing[0]), detail={"missing": missing})
    return {f"{AGENT_PREFIX}{a.name}": agent_tool_config(a.name, a.description, timeout_s=timeout_s) for a in rows.values()}
