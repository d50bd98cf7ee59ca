"""Agents as tools: another saved composition, run as a sub-run, answering its final text.

The engine knows only the shape (a tool taking ``{"input": string}``); who may run which agent,
and how a sub-run is prepared and recorded, is the server's business: it builds the
``AgentExecutor`` with its own ``runner``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..types import ToolConfig, ToolResult
from .base import ToolContext, ToolExecutor

AGENT_PREFIX = "agent."
AGENT_PARAMETERS = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The task or question for this agent, in full."}},
    "required": ["input"],
    "additionalProperties": False,
}

AgentRunner = Callable[[ToolConfig, str, ToolContext], Awaitable[ToolResult]]


def agent_tool_config(name: str, description: str = "", *, timeout_s: float | None = None) -> ToolConfig:
    """The tool ``agent.<name>`` as the calling model sees it."""
    return ToolConfig(
        tool_id=f"{AGENT_PREFIX}{name}",
        tool_type="agent",
        name=f"agent_{name}",
        description=description or f"Ask the agent {name!r} and get its answer.",
        parameters=AGENT_PARAMETERS,
        timeout_s=timeout_s,
    )


class AgentExecutor(ToolExecutor):
    def __init__(self, runner: AgentRunner) -> None:
        self.runner = runner

    async def execute(self, tool: ToolConfig, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        return await self.runner(tool, str(arguments["input"]), ctx)
