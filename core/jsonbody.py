"""Strict JSON for request bodies: the limits every /v1 body is held to before anything uses it
(and ``encode``, the fast writer of what the streams send back).

``NaN``/``Infinity``, invalid UTF-8, nesting deeper than ``max_depth`` and more than
``max_messages`` items in a top-level ``messages`` list are refused with a ``DomainError`` in
the envelope's terms. Framework-free, so it can run in a worker thread for large bodies.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from .errors import DomainError, InvalidRequest

NOT_JSON = "Request body is not valid JSON: {error}"
NOT_UTF8 = "Request body is not valid UTF-8."
TOO_DEEP = "Request body nests deeper than {limit} levels."
NOT_A_NUMBER = "Request body contains {token}, which JSON does not allow."
TOO_MANY_MESSAGES = "At most {limit} messages per request (got {count})."


class MalformedJson(InvalidRequest):
    code = "malformed_json"


class RequestTooLarge(DomainError):
    code = "request_too_large"
    status = 413


def _refuse_constant(token: str) -> Any:
    raise MalformedJson(NOT_A_NUMBER.format(token=token))


def _finite_float(token: str) -> float:
    value = float(token)
    if value in (float("inf"), float("-inf")):  # 1e999: valid JSON syntax, but no finite number
        raise MalformedJson(NOT_A_NUMBER.format(token="a number out of range"))
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative (a recursive walk is what a hostile body would overflow)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json_body(raw: bytes, *, max_depth: int = 64, max_messages: int = 1000) -> Any:
    """The body as JSON, or ``MalformedJson`` (400) / ``RequestTooLarge`` (413)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJson(NOT_UTF8) from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise MalformedJson(TOO_DEEP.format(limit=max_depth)) from None
    except ValueError as exc:
        raise MalformedJson(NOT_JSON.format(error=exc)) from None
    if _depth_exceeds(value, max_depth):
        raise MalformedJson(TOO_DEEP.format(limit=max_depth))
    if isinstance(value, dict) and isinstance(value.get("messages"), list) and len(value["messages"]) > max_messages:
        raise RequestTooLarge(TOO_MANY_MESSAGES.format(limit=max_messages, count=len(value["messages"])))
    return value


def encode(data: Any) -> bytes:
    """``data`` as JSON in UTF-8 (non-ASCII as it is, like ``json.dumps(ensure_ascii=False)``),
    through orjson at a fraction of json's cost: it is written once per streamed chunk."""
    try:
        return orjson.dumps(data)
    except TypeError:  # what orjson refuses (an integer beyond 64 bits in a tool's output)
        return json.dumps(data, ensure_ascii=False).encode()
