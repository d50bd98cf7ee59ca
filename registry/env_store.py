"""The env store: variables kept in the database, resolved wherever ``${VAR}`` appears.

Values are never written into ``os.environ``: every ``${VAR}`` reference (model keys and bases,
MCP configs, endpoint URLs) is resolved through ``env_lookup``, which asks the store first and
the process environment second. Lookups read the database (sync code only), so a change made
through any worker applies at once in every worker; a reference costs one indexed query, and
only where a config holds one. A change is also announced on the bus (``ENV_CHANGED``), for the
one thing a worker holds across requests: MCP connections opened with the old value.
A value stored under the name of a live ``AGENTSITE_*`` setting also changes that setting
(``live_settings``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from django.db import transaction

from core import bus
from core.errors import NotFound
from inference.engine import find_vars

from .models import EnvVar, LLMModel, MCPServer, Tool

NOT_FOUND = "No environment variable {key!r}."
ENV_CHANGED = "registry.env_changed"


def env_lookup(name: str) -> str | None:
    """The value ``${name}`` resolves to: the store's, else the process's, else None."""
    value = EnvVar.objects.filter(key=name).values_list("value", flat=True).first()
    return value if value is not None else os.environ.get(name)


def env_values(names: Iterable[str]) -> dict[str, str | None]:
    """Several lookups in one query, for code that resolves off the request thread (MCP)."""
    wanted = set(names)
    stored = dict(EnvVar.objects.filter(key__in=wanted).values_list("key", "value")) if wanted else {}
    return {name: stored[name] if name in stored else os.environ.get(name) for name in wanted}


def _announce(key: str) -> None:
    # The key only, never the value: every worker reads the value from the database.
    transaction.on_commit(lambda: bus.broadcast({"type": ENV_CHANGED, "key": key}))


def env_set(*, key: str, value: str, is_secret: bool) -> tuple[EnvVar, bool]:
    row, created = EnvVar.objects.update_or_create(key=key, defaults={"value": value, "is_secret": is_secret})
    _announce(key)
    return row, created


def env_delete(*, key: str) -> None:
    deleted, _ = EnvVar.objects.filter(key=key).delete()
    if not deleted:
        raise NotFound(NOT_FOUND.format(key=key))
    _announce(key)


def env_detect() -> list[dict[str, Any]]:
    """Every ``${VAR}`` the registries reference, whether it is set, and from where."""
    refs: dict[str, set[str]] = {}

    def add(names: Iterable[str], where: str) -> None:
        for name in names:
            refs.setdefault(name, set()).add(where)

    for m in LLMModel.objects.only("model_id", "api_key", "api_base"):
        add(find_vars([m.api_key, m.api_base]), f"model:{m.model_id}")
    for s in MCPServer.objects.only("name", "config"):
        add(find_vars(s.config), f"mcp:{s.name}")
    for t in Tool.objects.exclude(endpoint="").only("tool_id", "endpoint"):
        add(find_vars(t.endpoint), f"tool:{t.tool_id}")
    stored = set(EnvVar.objects.filter(key__in=refs).values_list("key", flat=True))
    out = []
    for name in sorted(refs):
        source = "database" if name in stored else "process" if name in os.environ else "missing"
        out.append({"key": name, "set": source != "missing", "source": source, "referenced_by": sorted(refs[name])})
    return out
