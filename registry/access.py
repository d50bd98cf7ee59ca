"""Who may use what: the one place that applies ``allowed_groups``.

A registry entry (model, tool, MCP server, skill — and anything else with an
``allowed_groups`` many-to-many to ``auth.Group``) with no groups is open to every
authenticated user; with groups, only to their members. Staff see and use everything.
An MCP server's groups apply to all of its tools and a skill's to its tool; a tool's own
groups narrow further (a caller needs to pass every list that is set).

Everything here filters querysets, so callers keep one query per read: a resource the caller
may not use is simply absent, and the caller's "unknown id" path answers for it.

    visible_models(user, qs=None)       models the user may see and run
    visible_tools(user, qs=None)        tools (server and skill groups included)
    visible_mcp_servers(user, qs=None)  MCP servers
    visible_skills(user, qs=None)       skills
    allowed(user, qs)                   any queryset whose model has ``allowed_groups``
    can_use(user, obj)                  one row (one query; prefer the filters in loops)
    sees_everything(user)               staff: never narrowed
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.db import models
from django.db.models import Q, QuerySet

from .models import LLMModel, MCPServer, Skill, Tool

M = TypeVar("M", bound=models.Model)


def sees_everything(user: Any) -> bool:
    """Staff (superusers included) are not narrowed by ``allowed_groups``."""
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False))


def group_ids(user: Any) -> list[int]:
    """The ids of the user's groups (one small query; read fresh, so a change applies at once)."""
    return list(user.groups.values_list("id", flat=True))


def open_to(model: type[models.Model], groups: list[int], *, path: str = "pk") -> Q:
    """A condition: the ``model`` row at ``path`` (``pk``, or a foreign key of the filtered
    queryset) names no group, or one of ``groups``. Two uncorrelated ``IN`` subqueries on the
    through table: the database evaluates each once (correlated ``EXISTS`` cost several times more)."""
    field = model._meta.get_field("allowed_groups")
    assert isinstance(field, models.ManyToManyField)
    through = cast("type[models.Model]", field.remote_field.through)  # always set once the apps are ready
    column = field.m2m_field_name() + "_id"
    restricted = through._default_manager.values(column)
    admitted = through._default_manager.filter(group_id__in=groups).values(column)
    return ~Q(**{f"{path}__in": restricted}) | Q(**{f"{path}__in": admitted})


def allowed(user: Any, qs: QuerySet[M]) -> QuerySet[M]:
    """``qs`` narrowed to rows whose own ``allowed_groups`` admit ``user``."""
    if sees_everything(user):
        return qs
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    return qs.filter(open_to(qs.model, group_ids(user)))


def visible_models(user: Any, qs: QuerySet[LLMModel] | None = None) -> QuerySet[LLMModel]:
    return allowed(user, LLMModel.objects.all() if qs is None else qs)


def visible_mcp_servers(user: Any, qs: QuerySet[MCPServer] | None = None) -> QuerySet[MCPServer]:
    return allowed(user, MCPServer.objects.all() if qs is None else qs)


def visible_skills(user: Any, qs: QuerySet[Skill] | None = None) -> QuerySet[Skill]:
    return allowed(user, Skill.objects.all() if qs is None else qs)


def visible_tools(user: Any, qs: QuerySet[Tool] | None = None) -> QuerySet[Tool]:
    """Tools the user may use: the tool's own groups, and its MCP server's or skill's."""
    qs = Tool.objects.all() if qs is None else qs
    if sees_everything(user):
        return qs
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    groups = group_ids(user)
    return qs.filter(
        open_to(Tool, groups),
        Q(server__isnull=True) | open_to(MCPServer, groups, path="server"),
        Q(skill__isnull=True) | open_to(Skill, groups, path="skill"),
    )


_VISIBLE: dict[type[models.Model], Callable[[Any, Any], QuerySet[Any]]] = {
    LLMModel: visible_models, Tool: visible_tools, MCPServer: visible_mcp_servers, Skill: visible_skills,
}


def can_use(user: Any, obj: models.Model) -> bool:
    """Whether ``user`` may see and use this one row (tools: server and skill groups included)."""
    if sees_everything(user):
        return True
    model = type(obj)
    narrow = _VISIBLE.get(model, allowed)
    return narrow(user, model._default_manager.filter(pk=obj.pk)).exists()
