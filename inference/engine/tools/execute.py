"""Running one tool call: argument validation, timeout, timing, failures as error results."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jsonschema

from ..errors import DomainError, InvalidArguments, ToolError
from ..types import ToolConfig, ToolResult, text_result
from .base import Executors, ToolContext, executor_kind

INVALID_ARGUMENTS = "Invalid arguments for {tool}: {error}"
TIMED_OUT = "Tool {tool} timed out after {seconds:g} s."
FAILED = "Tool {tool} failed: {error}"
NO_EXECUTOR = "No executor for tool type {kind!r} in this runtime."


@lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    return jsonschema.validators.validator_for(schema)(schema)


def check_arguments(tool: ToolConfig, arguments: Any) -> None:
    """Raise InvalidArguments (400) when ``arguments`` don't match ``tool.parameters``."""
    if not isinstance(arguments, Mapping):
        raise InvalidArguments(INVALID_ARGUMENTS.format(tool=tool.tool_id, error="arguments must be a JSON object"))
    schema = dict(tool.parameters or {})
    if not schema:
        return
    error = jsonschema.exceptions.best_match(_validator(json.dumps(schema, sort_keys=True)).iter_errors(dict(arguments)))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        message = f"{where}: {error.message}" if where else error.message
        raise InvalidArguments(
            INVALID_ARGUMENTS.format(tool=tool.tool_id, error=message), detail={"path": where, "error": error.message}
        )


async def execute_tool(
    tool: ToolConfig,
    arguments: Mapping[str, Any],
    ctx: ToolContext,
    *,
    executors: Executors,
    timeout_s: float,
    validate: bool = True,
) -> ToolResult:
    """Never raises for a tool's own failure: the model (or caller) gets ``is_error=True``."""
    start = time.perf_counter()
    try:
        if validate:
            check_arguments(tool, arguments)
        executor = executors.get(executor_kind(tool))
        if executor is None:
            raise ToolError(NO_EXECUTOR.format(kind=executor_kind(tool)))
        result = await asyncio.wait_for(executor.execute(tool, arguments, ctx), timeout=timeout_s)
    except InvalidArguments as exc:
        result = text_result(tool.tool_id, exc.message, is_error=True)
    except TimeoutError:
        result = text_result(tool.tool_id, TIMED_OUT.format(tool=tool.tool_id, seconds=timeout_s), is_error=True)
    except DomainError as exc:
        result = text_result(tool.tool_id, FAILED.format(tool=tool.tool_id, error=exc.message), is_error=True)
    except Exception as exc:  # noqa: BLE001 - a tool's bug must not end the run; the model sees what happened
        result = text_result(tool.tool_id, FAILED.format(tool=tool.tool_id, error=f"{type(exc).__name__}: {exc}"), is_error=True)
    return result.with_duration((time.perf_counter() - start) * 1000)
