"""Registry services (writes) and selectors (reads): ORM rows <-> engine dataclasses."""

from __future__ import annotations

import importlib
import logging
import os
import threading
from typing import Any, Iterable

import jsonschema

from agentsite.broadcast import broadcast
from agentsite.errors import ApiError
from inference.engine.envvars import expand_vars, find_vars
from inference.engine.errors import ModelNotFound, ToolNotFound
from inference.engine.types import ModelConfig, ToolConfig

from .models import EnvVar, LLMModel, MCPServer, Tool

log = logging.getLogger(__name__)

CALLABLE_IMPORT_FAILED = "Callable {path!r} could not be imported: {error}"
CALLABLE_NOT_CALLABLE = "{path!r} is not callable."
SCHEMA_INVALID = "parameters is not a valid JSON Schema: {error}"
SCHEMA_NOT_OBJECT = 'parameters must be a JSON Schema object with "type": "object".'


# ---- secrets ---------------------------------------------------------------------------------


def mask_secret(value: str) -> str:
    """``sk-…f3a9`` for long values, ``…`` for short ones; ``${VAR}`` references are not secrets."""
    if not value:
        return ""
    if value.startswith("${") and value.endswith("}") and find_vars(value):
        return value
    if len(value) < 12:
        return "…"
    return f"{value[:3]}…{value[-4:]}"


def mask_mapping(values: dict[str, Any] | None) -> dict[str, Any]:
    return {k: mask_secret(v) if isinstance(v, str) else v for k, v in (values or {}).items()}


def mask_mcp_config(config: dict[str, Any]) -> dict[str, Any]:
    """An MCP server config for display: ``env`` and ``headers`` values masked."""
    out = dict(config)
    for field in ("env", "headers"):
        if isinstance(out.get(field), dict):
            out[field] = mask_mapping(out[field])
    return out


# ---- function tool validation ---------------------------------------------------------------


def import_callable(path: str) -> Any:
    """``pkg.mod:func`` or ``pkg.mod.func`` -> the object. Raises ApiError(400) on failure."""
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise ApiError("invalid_callable", CALLABLE_IMPORT_FAILED.format(path=path, error="expected 'module:function'"))
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # any import-time error is the registrant's problem, reported as 400
        raise ApiError("invalid_callable", CALLABLE_IMPORT_FAILED.format(path=path, error=exc)) from None
    if not callable(obj):
        raise ApiError("invalid_callable", CALLABLE_NOT_CALLABLE.format(path=path))
    return obj


def validate_parameters_schema(schema: Any) -> None:
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise ApiError("invalid_schema", SCHEMA_NOT_OBJECT, detail={"parameters": SCHEMA_NOT_OBJECT})
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        msg = SCHEMA_INVALID.format(error=exc.message)
        raise ApiError("invalid_schema", msg, detail={"parameters": msg}) from None


# ---- env store -------------------------------------------------------------------------------

# Process values that a database entry shadowed, restored when the entry is deleted.
_shadowed: dict[str, str | None] = {}
_env_lock = threading.Lock()


def env_apply(key: str, value: str) -> None:
    with _env_lock:
        if key not in _shadowed:
            _shadowed[key] = os.environ.get(key)
        os.environ[key] = value


def env_unapply(key: str) -> None:
    with _env_lock:
        if key in _shadowed:
            original = _shadowed.pop(key)
            if original is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = original


def env_apply_all() -> int:
    """Apply every stored value to this process (at start, and on cross-worker signals)."""
    count = 0
    for key, value in EnvVar.objects.values_list("key", "value"):
        env_apply(key, value)
        count += 1
    return count


def env_reload_key(key: str) -> None:
    """Make this process match the database for one key (after a change in any worker)."""
    value = EnvVar.objects.filter(key=key).values_list("value", flat=True).first()
    if value is None:
        env_unapply(key)
    else:
        env_apply(key, value)


def env_set(*, key: str, value: str, is_secret: bool) -> tuple[EnvVar, bool]:
    var, created = EnvVar.objects.update_or_create(key=key, defaults={"value": value, "is_secret": is_secret})
    env_apply(key, value)
    broadcast({"type": "env.changed", "key": key})
    return var, created


def env_delete(*, key: str) -> None:
    deleted, _ = EnvVar.objects.filter(key=key).delete()
    if not deleted:
        raise ApiError("not_found", f"No environment variable {key!r}.", status_code=404)
    env_unapply(key)
    broadcast({"type": "env.changed", "key": key})


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


# ---- selectors: rows -> engine configs -------------------------------------------------------


def model_to_config(row: LLMModel) -> ModelConfig:
    return ModelConfig(
        model_id=row.model_id,
        api_protocol=row.api_protocol,  # type: ignore[arg-type]
        api_base=expand_vars(row.api_base),
        model_name=row.model_name,
        api_key=expand_vars(row.api_key) or None,
        display_name=row.display_name,
        context_window=row.context_window,
        options=dict(row.options or {}),
        supports_vision=row.supports_vision,
        supports_audio=row.supports_audio,
        timeout_s=row.timeout_s,
        enabled=row.enabled,
    )


def model_config_get(*, model_id: str) -> ModelConfig:
    row = LLMModel.objects.filter(model_id=model_id, enabled=True).first()
    if row is None:
        raise ModelNotFound(f"No model with id {model_id!r}.")
    return model_to_config(row)


def tool_to_config(row: Tool) -> ToolConfig:
    return ToolConfig(
        tool_id=row.tool_id,
        tool_type=row.tool_type,  # type: ignore[arg-type]
        name=row.name,
        description=row.description,
        parameters=row.parameters or {"type": "object", "properties": {}},
        enabled=row.enabled,
        callable=row.callable or None,
        endpoint=expand_vars(row.endpoint) or None,
        server=row.server.name if row.server_id else None,
        remote_name=row.remote_name or None,
        skill=row.skill.name if row.skill_id else None,
        skill_path=row.skill.path if row.skill_id else None,
        timeout_s=row.timeout_s,
    )


def tool_configs_get(*, tool_ids: Iterable[str], enabled_only: bool = True) -> list[ToolConfig]:
    """Tools in the order asked; unknown (or disabled) ids -> ToolNotFound naming them."""
    wanted = list(dict.fromkeys(tool_ids))
    qs = Tool.objects.select_related("server", "skill").filter(tool_id__in=wanted)
    if enabled_only:
        qs = qs.filter(enabled=True)
    rows = {t.tool_id: t for t in qs}
    missing = [t for t in wanted if t not in rows]
    if missing:
        raise ToolNotFound(f"No enabled tool with id {missing[0]!r}.", detail={"missing": missing})
    return [tool_to_config(rows[t]) for t in wanted]


def tool_configs_all(*, enabled_only: bool = True) -> list[ToolConfig]:
    qs = Tool.objects.select_related("server", "skill")
    if enabled_only:
        qs = qs.filter(enabled=True)
    return [tool_to_config(t) for t in qs]

