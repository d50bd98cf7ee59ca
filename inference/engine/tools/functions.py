"""Function tools: the ``@tool`` decorator, dotted-path callables, and HTTP endpoint tools."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args, get_origin

import httpx

from ..errors import ToolError
from ..http import get_client
from ..types import ContentItem, ToolConfig, ToolResult, text_result
from .base import ToolContext, ToolExecutor

TOOL_ATTR = "__agentsite_tool__"
ENDPOINT_FAILED = "endpoint answered HTTP {status}: {body}"
ENDPOINT_UNREACHABLE = "endpoint could not be reached: {error}"


# ---- the decorator ---------------------------------------------------------------------------


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    tool_id: str | None = None,
) -> Any:
    """Turn a typed function (sync or async) into a function tool.

    The JSON Schema comes from the signature; the description from the docstring's first
    paragraph, and per-parameter descriptions from a Google-style ``Args:`` section or
    ``:param x:`` lines. The function stays callable as before::

        @tool
        def add(a: int, b: int = 0) -> int:
            '''Add two integers.

            Args:
                a: first addend
            '''
    """

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        summary, param_docs = _parse_docstring(inspect.getdoc(f) or "")
        tool_name = name or f.__name__
        config = ToolConfig(
            tool_id=tool_id or tool_name,
            tool_type="function",
            name=tool_name,
            description=description if description is not None else summary,
            parameters=schema_from_signature(f, param_docs),
            fn=f,
        )
        setattr(f, TOOL_ATTR, config)
        return f

    return wrap(fn) if fn is not None else wrap


def tool_config_of(obj: Any) -> ToolConfig:
    if isinstance(obj, ToolConfig):
        return obj
    config = getattr(obj, TOOL_ATTR, None)
    if config is None and callable(obj):
        config = getattr(tool(obj), TOOL_ATTR)
    if config is None:
        raise TypeError(f"{obj!r} is neither a ToolConfig nor a function")
    return config


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    summary = doc.split("\n\n", 1)[0].strip().replace("\n", " ")
    params: dict[str, str] = {}
    for m in re.finditer(r":param\s+(?:\w+\s+)?(\w+):\s*(.+)", doc):
        params[m.group(1)] = m.group(2).strip()
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.*\n?)+)", doc, re.M)
    if section:
        for m in re.finditer(r"^[ \t]+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", section.group(1), re.M):
            params.setdefault(m.group(1), m.group(2).strip())
    return summary, params


def schema_from_signature(fn: Callable[..., Any], param_docs: Mapping[str, str] | None = None) -> dict[str, Any]:
    hints = typing.get_type_hints(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or pname in ("self", "cls"):
            continue
        schema, optional = _type_schema(hints.get(pname, Any))
        if param_docs and pname in param_docs:
            schema["description"] = param_docs[pname]
        if param.default is not inspect.Parameter.empty:
            if param.default is not None:
                schema["default"] = param.default
        elif not optional:
            required.append(pname)
        properties[pname] = schema
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array"}


def _type_schema(hint: Any) -> tuple[dict[str, Any], bool]:
    """(schema, is_optional) for a type hint."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        optional = len(non_none) < len(args)
        if len(non_none) == 1:
            return _type_schema(non_none[0])[0], optional
        return {"anyOf": [_type_schema(a)[0] for a in non_none]}, optional
    if origin is Literal:
        return {"enum": list(args)}, False
    if origin in (list, tuple, set, frozenset):
        return ({"type": "array", "items": _type_schema(args[0])[0]} if args else {"type": "array"}), False
    if origin is dict:
        return {"type": "object"}, False
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}, False
    return {}, False


# ---- executors -------------------------------------------------------------------------------


def to_content(value: Any, tool_id: str) -> ToolResult:
    """A Python return value as tool content: text as-is, JSON-able values as JSON + structured."""
    if isinstance(value, ToolResult):
        return value
    if isinstance(value, str):
        return text_result(tool_id, value)
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return text_result(tool_id, str(value))
    return text_result(tool_id, text, structured=value if isinstance(value, (dict, list)) else None)


_imported: dict[str, Callable[..., Any]] = {}


def import_dotted(path: str) -> Callable[..., Any]:
    """``pkg.mod:func`` (or ``pkg.mod.func``), imported once per process."""
    fn = _imported.get(path)
    if fn is None:
        module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        fn = _imported[path] = obj
    return fn


class PythonFunctionExecutor(ToolExecutor):
    async def execute(self, tool: ToolConfig, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        fn = tool.fn or import_dotted(tool.callable or "")
        if inspect.iscoroutinefunction(fn):
            value = await fn(**arguments)
        else:
            # Sync functions run off the event loop so a slow tool never stalls other streams.
            value = await asyncio.to_thread(fn, **arguments)
        return to_content(value, tool.tool_id)


class EndpointExecutor(ToolExecutor):
    """POSTs ``{"arguments": {...}}``; a JSON reply becomes the result (MCP-shaped or plain)."""

    async def execute(self, tool: ToolConfig, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        url = tool.endpoint or ""
        client = get_client(url, tool.timeout_s or 60.0)
        try:
            res = await client.post(url, json={"arguments": dict(arguments)})
        except httpx.HTTPError as exc:
            raise ToolError(ENDPOINT_UNREACHABLE.format(error=str(exc) or type(exc).__name__)) from None
        if res.status_code >= 400:
            raise ToolError(ENDPOINT_FAILED.format(status=res.status_code, body=res.text[:500]))
        try:
            body = res.json()
        except ValueError:
            return text_result(tool.tool_id, res.text)
        if isinstance(body, dict) and isinstance(body.get("content"), list):
            items: tuple[ContentItem, ...] = tuple(i for i in body["content"] if isinstance(i, dict))
            return ToolResult(tool.tool_id, items, bool(body.get("is_error") or body.get("isError")), body.get("structured"))
        return to_content(body, tool.tool_id)


