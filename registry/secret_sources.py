"""What the registries hold that must never leave: fed to the one scrubber (``core.secrets``).

Resolved model API keys (a ``${VAR}`` is resolved the way a run resolves it), env values marked
secret, MCP ``env`` and ``headers`` values and the values of an MCP server's ``envFile``, and the
passwords and secret query values of every configured URL. A change to any registry row
announces itself so every worker rebuilds; an ``envFile`` is read again at each rebuild (a
registry change, or the bus resync every minute with Redis).
"""

from __future__ import annotations

import os
from typing import Any

from django.db.models.signals import post_delete, post_save

from core import secrets
from inference.engine import DomainError, expand_vars
from inference.engine.mcp_config import read_env_file

from .models import EnvVar, LLMModel, MCPServer, Tool


def registry_secrets() -> list[str]:
    """Every secret value the registries hold or resolve to (sync: reads the database)."""
    stored = dict(EnvVar.objects.values_list("key", "value"))

    def lookup(name: str) -> str | None:
        return stored[name] if name in stored else os.environ.get(name)

    found: list[str] = list(EnvVar.objects.filter(is_secret=True).values_list("value", flat=True))
    for api_key, api_base in LLMModel.objects.values_list("api_key", "api_base"):
        found.append(expand_vars(api_key, lookup))  # a literal, or what its ${VAR} resolves to
        found += secrets.url_secrets(expand_vars(api_base, lookup))
    for config in MCPServer.objects.values_list("config", flat=True):
        found += _config_secrets(config if isinstance(config, dict) else {}, lookup)
    for endpoint in Tool.objects.exclude(endpoint="").values_list("endpoint", flat=True):
        found += secrets.url_secrets(expand_vars(endpoint, lookup))
    return [value for value in found if value]


def _credential(value: str) -> list[str]:
    """The token of "<scheme> <token>" (``Bearer abc…``), which may be echoed alone too (a server's
    error, stderr). Not the scheme, nor other words of a value: a known secret is masked wherever it
    appears, so "Bearer" itself would be masked everywhere, and a token the registry never knew,
    written after it, would no longer be recognised as one."""
    parts = value.split()
    return [parts[1]] if len(parts) == 2 else []


def _config_secrets(config: dict[str, Any], lookup: Any) -> list[str]:
    found: list[str] = []
    for field in ("env", "headers"):
        values = config.get(field)
        if isinstance(values, dict):
            for value in expand_vars(list(values.values()), lookup):
                if isinstance(value, str):
                    found += [value, *_credential(value)]
    env_file = config.get("envFile")
    if isinstance(env_file, str) and env_file:
        try:  # the file the child starts with: its values reach the child's env like ``env``'s
            found += read_env_file(expand_vars(env_file, lookup)).values()
        except DomainError:  # unreadable here: the server fails to start and says so
            pass
    url = config.get("url")
    if isinstance(url, str):
        found += secrets.url_secrets(expand_vars(url, lookup))
    return found


def _changed(sender: Any, **kwargs: Any) -> None:
    secrets.scrubber.mark_stale()  # this worker at once (its own transaction already sees the change)
    secrets.announce_change()  # every worker, once committed


def install() -> None:
    secrets.secret_source(registry_secrets)
    for model in (EnvVar, LLMModel, MCPServer, Tool):
        post_save.connect(_changed, sender=model, dispatch_uid=f"agentsite-secrets-{model.__name__}-save")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"agentsite-secrets-{model.__name__}-delete")
