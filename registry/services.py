"""Registry services (writes) and the secret masking every read of the registries goes through."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
from django.db import IntegrityError, transaction

from core import names
from core.errors import Conflict, InvalidRequest, ValidationFailed
from inference.engine import find_vars, import_dotted

from .models import LLMModel, Tool, ToolCallFormat, ToolType

CALLABLE_IMPORT_FAILED = "Callable {path!r} could not be imported: {error}"
CALLABLE_NOT_CALLABLE = "{path!r} is not callable."
SCHEMA_INVALID = "parameters is not a valid JSON Schema: {error}"
SCHEMA_NOT_OBJECT = 'parameters must be a JSON Schema object with "type": "object".'
MODEL_EXISTS = "A model with id {model_id!r} already exists."
NAME_TAKEN = "{name!r} is the name of an {holder}; models and agents share one namespace."
TOOL_EXISTS = "A tool with id {tool_id!r} already exists."
TOOL_NOT_DELETABLE = "{tool_id!r} is a built-in or belongs to an MCP server or skill; disable it, or delete its server or skill."
ONE_TARGET = "A function tool needs exactly one of callable or endpoint."


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


def mask_mapping(values: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: mask_secret(v) if isinstance(v, str) else v for k, v in (values or {}).items()}


def mask_mcp_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """An MCP server config for display: ``env`` and ``headers`` values masked."""
    out = dict(config)
    for field in ("env", "headers"):
        if isinstance(out.get(field), dict):
            out[field] = mask_mapping(out[field])
    return out


# ---- validation ------------------------------------------------------------------------------


def callable_check(path: str) -> None:
    """``pkg.mod:func`` or ``pkg.mod.func`` must import to a callable (400 ``invalid_callable``)."""
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise InvalidRequest(
            CALLABLE_IMPORT_FAILED.format(path=path, error="expected 'module:function'"), code="invalid_callable"
        )
    try:
        obj = import_dotted(path)
    except Exception as exc:  # noqa: BLE001 - any import-time error is the registrant's problem, reported as 400
        raise InvalidRequest(CALLABLE_IMPORT_FAILED.format(path=path, error=exc), code="invalid_callable") from None
    if not callable(obj):
        raise InvalidRequest(CALLABLE_NOT_CALLABLE.format(path=path), code="invalid_callable")


def parameters_schema_check(schema: Any) -> None:
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise InvalidRequest(SCHEMA_NOT_OBJECT, code="invalid_schema", detail={"parameters": SCHEMA_NOT_OBJECT})
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        msg = SCHEMA_INVALID.format(error=exc.message)
        raise InvalidRequest(msg, code="invalid_schema", detail={"parameters": msg}) from None


# ---- models ----------------------------------------------------------------------------------


def _saved(row: Any, conflict: str, groups: Iterable[Any] | None = None) -> Any:
    """Save ``row`` and, when given, its ``allowed_groups``, in one transaction (all or nothing)."""
    try:
        with transaction.atomic():
            row.save()
            if groups is not None:
                row.allowed_groups.set(groups)
    except IntegrityError:
        raise Conflict(conflict) from None
    return row


def _split_groups(data: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """The row's own fields, and its ``allowed_groups`` (None: leave them as they are)."""
    fields = dict(data)
    return fields, fields.pop("allowed_groups", None)


def model_create(*, data: Mapping[str, Any]) -> LLMModel:
    holder = names.name_holder(str(data.get("model_id")))
    if holder:  # clients name models and agents in the same field
        raise Conflict(NAME_TAKEN.format(name=data.get("model_id"), holder=holder))
    fields, groups = _split_groups(data)
    return _saved(LLMModel(**fields), MODEL_EXISTS.format(model_id=data.get("model_id")), groups)


def model_update(*, model: LLMModel, data: Mapping[str, Any]) -> LLMModel:
    fields, groups = _split_groups(data)
    for key, value in fields.items():
        setattr(model, key, value)
    return _saved(model, MODEL_EXISTS.format(model_id=model.model_id), groups)


def model_delete(*, model: LLMModel) -> None:
    model.delete()


def _model_id_for(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._:-]+", "-", name).strip("-")[:90] or "model"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _detected_fields(found: Mapping[str, Any]) -> dict[str, Any]:
    """What detection learnt about a model (``models_detect``), as field values; unknown stays default."""
    fields: dict[str, Any] = {"supports_vision": found.get("supports_vision") is True}
    window = found.get("context_window")
    if type(window) is int and window > 0:
        fields["context_window"] = window
    if found.get("tool_call_format") in ToolCallFormat.values:
        fields["tool_call_format"] = found["tool_call_format"]
    return fields


@transaction.atomic
def models_register_detected(
    *, api_protocol: str, api_base: str, api_key: str, model_names: Iterable[str],
    detected: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """Register the chosen models a server offers (skipping those registered already); new ids.

    ``detected`` maps a model name to its ``models_detect`` entry: vision, context window and
    the suggested ``tool_call_format`` are registered as the server reported them."""
    taken = set(LLMModel.objects.values_list("model_id", flat=True))
    existing = set(LLMModel.objects.filter(api_base=api_base).values_list("model_name", flat=True))
    created = []
    for name in dict.fromkeys(model_names):
        if name in existing:
            continue
        model_id = _model_id_for(name, taken)
        taken.add(model_id)
        LLMModel.objects.create(model_id=model_id, api_protocol=api_protocol, api_base=api_base, model_name=name,
                                api_key=api_key, display_name=name, **_detected_fields((detected or {}).get(name, {})))
        created.append(model_id)
    return created


# ---- function tools --------------------------------------------------------------------------


def _tool_check(merged: Mapping[str, Any], changed: Mapping[str, Any]) -> None:
    """A function tool runs exactly one importable callable or one endpoint; its schema is valid."""
    callable_path, endpoint = merged.get("callable") or "", merged.get("endpoint") or ""
    if bool(callable_path) == bool(endpoint):
        raise ValidationFailed(f"callable: {ONE_TARGET}", detail={"callable": [ONE_TARGET]})
    if changed.get("callable"):
        callable_check(changed["callable"])
    if "parameters" in changed:
        parameters_schema_check(changed["parameters"])


def tool_create(*, data: Mapping[str, Any]) -> Tool:
    _tool_check(data, data)
    fields, groups = _split_groups(data)
    return _saved(Tool(tool_type=ToolType.FUNCTION, **fields), TOOL_EXISTS.format(tool_id=data.get("tool_id")), groups)


def tool_update(*, tool: Tool, data: Mapping[str, Any]) -> Tool:
    if tool.tool_type == ToolType.FUNCTION:
        merged = {"callable": tool.callable, "endpoint": tool.endpoint, **data}
        _tool_check(merged, data)
    elif "parameters" in data:
        parameters_schema_check(data["parameters"])
    fields, groups = _split_groups(data)
    for key, value in fields.items():
        setattr(tool, key, value)
    return _saved(tool, TOOL_EXISTS.format(tool_id=tool.tool_id), groups)


def tool_delete(*, tool: Tool) -> None:
    if tool.tool_type in (ToolType.MCP, ToolType.SKILL, ToolType.BUILTIN):
        raise Conflict(TOOL_NOT_DELETABLE.format(tool_id=tool.tool_id))
    tool.delete()
