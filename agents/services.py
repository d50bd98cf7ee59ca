"""Agent writes: every rule that spans rows (names shared with models, tools that exist, no
agent reaching itself) is checked here, for the API and the admin alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import IntegrityError, transaction

from core.errors import Conflict, ValidationFailed
from inference.engine import AGENT_PREFIX
from registry.models import LLMModel, Tool
from templates_app.services import template_get

from .models import Agent

AGENT_EXISTS = "An agent named {name!r} already exists."
NAME_IS_MODEL = "{name!r} is a model_id in use; agents and models share one namespace."
UNKNOWN_MODEL = "No model with id {model_id!r}."
UNKNOWN_TOOLS = "Unknown tool ids: {ids}."
CYCLE = "Agent {name!r} would reach itself: {path}."
IN_USE = "Agent {name!r} is a tool of {users}; remove it there first."


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", detail={field: [message]})


def agent_refs(tool_ids: Sequence[str]) -> list[str]:
    return [t.removeprefix(AGENT_PREFIX) for t in tool_ids if t.startswith(AGENT_PREFIX)]


def _cycle_from(name: str, refs: Sequence[str]) -> list[str] | None:
    """The path by which ``name`` (with ``refs`` as its agent tools) reaches itself, or None."""
    graph = {a.name: agent_refs(a.tool_ids or []) for a in Agent.objects.only("name", "tool_ids")}
    graph[name] = list(refs)
    stack: list[tuple[str, list[str]]] = [(ref, [name, ref]) for ref in refs]
    seen: set[str] = set()
    while stack:
        current, path = stack.pop()
        if current == name:
            return path
        if current in seen:
            continue
        seen.add(current)
        stack.extend((nxt, [*path, nxt]) for nxt in graph.get(current, ()))
    return None


def agent_check(agent: Agent) -> None:
    """The rules that span rows; raises a DomainError (409 name taken, 400 unknown refs or a cycle)."""
    if LLMModel.objects.filter(model_id=agent.name).exists():
        raise Conflict(NAME_IS_MODEL.format(name=agent.name))
    if not LLMModel.objects.filter(model_id=agent.model_id).exists():
        raise _invalid("model_id", UNKNOWN_MODEL.format(model_id=agent.model_id))
    tool_ids = list(agent.tool_ids or [])
    refs = agent_refs(tool_ids)
    plain = [t for t in tool_ids if not t.startswith(AGENT_PREFIX)]
    known = set(Tool.objects.filter(tool_id__in=plain).values_list("tool_id", flat=True))
    known |= {f"{AGENT_PREFIX}{n}" for n in Agent.objects.filter(name__in=refs).values_list("name", flat=True)}
    known |= {f"{AGENT_PREFIX}{agent.name}"}  # itself: reported as the cycle it is, below
    missing = [t for t in tool_ids if t not in known]
    if missing:
        raise _invalid("tool_ids", UNKNOWN_TOOLS.format(ids=", ".join(missing)))
    path = _cycle_from(agent.name, refs)
    if path:
        raise ValidationFailed(CYCLE.format(name=agent.name, path=" → ".join(path)), code="agent_cycle",
                               detail={"tool_ids": [CYCLE.format(name=agent.name, path=" → ".join(path))], "cycle": path})
    if agent.prompt_template:
        template_get(id_or_name=agent.prompt_template)  # 404 template_not_found when unknown


def _saved(agent: Agent, groups: Any) -> Agent:
    try:
        with transaction.atomic():
            agent_check(agent)
            agent.save()
            if groups is not None:
                agent.allowed_groups.set(groups)
    except IntegrityError:
        raise Conflict(AGENT_EXISTS.format(name=agent.name)) from None
    return agent


def agent_create(*, data: Mapping[str, Any]) -> Agent:
    fields = dict(data)
    groups = fields.pop("allowed_groups", [])
    if Agent.objects.filter(name=fields.get("name")).exists():
        raise Conflict(AGENT_EXISTS.format(name=fields.get("name")))
    return _saved(Agent(**fields), groups)


def agent_update(*, agent: Agent, data: Mapping[str, Any]) -> Agent:
    fields = dict(data)
    groups = fields.pop("allowed_groups", None)
    for key, value in fields.items():
        setattr(agent, key, value)
    return _saved(agent, groups)


def agent_delete(*, agent: Agent) -> None:
    ref = f"{AGENT_PREFIX}{agent.name}"
    users = [a.name for a in Agent.objects.exclude(pk=agent.pk).only("name", "tool_ids") if ref in (a.tool_ids or [])]
    if users:
        raise Conflict(IN_USE.format(name=agent.name, users=", ".join(sorted(users))))
    agent.delete()
