"""The tool executor contract: one executor per tool type, looked up by ``tool_type``.

Adding a tool type is one executor class plus one ``register_executor`` line; the tool loop
and ``/v1/tools/call`` never special-case a type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..types import ToolConfig, ToolResult


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may know about the run that called it."""

    session_id: str | None = None
    scratch_dir: str | None = None  # per-session working folder (bash)
    settings: Mapping[str, Any] = field(default_factory=dict)  # the AGENTSITE settings dict


class ToolExecutor(ABC):
    """Runs one kind of tool.

    ``execute`` receives arguments already validated against ``tool.parameters`` and returns a
    ``ToolResult`` whose ``content`` uses MCP content item shapes. A failure the model should
    see (bad input, remote error) is returned as ``is_error=True``; raising ``ToolError`` does
    the same through the caller. Durations are measured by the caller.
    """

    @abstractmethod
    async def execute(self, tool: ToolConfig, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult: ...


_EXECUTORS: dict[str, ToolExecutor] = {}


def register_executor(kind: str, executor: ToolExecutor) -> None:
    _EXECUTORS[kind] = executor


def executor_for(tool: ToolConfig) -> ToolExecutor:
    """Function tools split by how they run: in-process (``fn``/``callable``) or ``endpoint``."""
    kind = tool.tool_type
    if kind == "function" and tool.endpoint and not (tool.fn or tool.callable):
        kind = "endpoint"
    elif kind == "builtin":  # built-ins are registered under their fixed tool_id
        kind = f"builtin:{tool.tool_id}"
    try:
        return _EXECUTORS[kind]
    except KeyError:
        raise LookupError(f"No executor for tool type {kind!r}") from None
