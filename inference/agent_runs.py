"""An agent called as a tool (``agent.<name>``), run as a sub-run through the same lifecycle
as any request.

A sub-run is ``run_begin`` for the caller of the run that called it: the same access checks
(the caller must be allowed the agent, its model and its tools), the same quota check, and its
model calls recorded against the same user and API key. Its events reach the calling run as
``tool_progress`` events (docs/agents.md), so a client sees the sub-agent work as it works.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from core.db import db_async
from inference.engine import AGENT_PREFIX, StreamEvent, ToolConfig, ToolContext, ToolResult
from inference.engine.types import text_result
from registry import live_settings

from .lifecycle import run_begin
from .stream_scrub import scrubbed_events

DEPTH_LIMIT = "Agents may call agents at most {limit} deep; {name!r} was not run."
NO_CALLER = "An agent runs as a tool only for a known caller (a run or a direct call of a signed-in user)."
# Sub-run events relayed to the calling run as ``tool_progress`` (ping, session, message and
# done are of no use to a watcher; ``done`` becomes the tool's result).
PROGRESS_EVENTS = frozenset({"delta", "tool_call", "tool_result", "tool_progress"})


def _progress_of(name: str, event: StreamEvent) -> dict[str, Any]:
    data = {k: v for k, v in event.data.items() if k not in ("result", "exception")}
    return {"agent": name, "event": event.event, "data": data}


async def agent_subrun(tool: ToolConfig, task: str, ctx: ToolContext) -> ToolResult:
    """Run the agent ``tool`` names on ``task`` for the run's caller; its final text is the result."""
    name = tool.tool_id.removeprefix(AGENT_PREFIX)
    limit = (await db_async(live_settings.current)())["AGENT_MAX_DEPTH"]
    if ctx.caller is None:
        return text_result(tool.tool_id, NO_CALLER, is_error=True)
    if ctx.depth + 1 > limit:
        return text_result(tool.tool_id, DEPTH_LIMIT.format(limit=limit, name=name), is_error=True)
    run = await db_async(run_begin)(user=ctx.caller, data={"agent": name, "text": task})
    run.prepared = replace(run.prepared, context=replace(run.prepared.context, depth=ctx.depth + 1))
    answer = text_result(tool.tool_id, "", is_error=True)  # a run always ends with done or error
    # Its deltas are relayed as progress: scrubbed across pieces like the outer stream's own.
    async for event in scrubbed_events(run.runtime.astream(run.prepared, hooks=run.hooks, control=run.control)):
        if event.event == "done":
            result = event.data["result"]
            answer = text_result(tool.tool_id, result.content, is_error=result.finish_reason == "error")
        elif event.event == "error":
            answer = text_result(tool.tool_id, event.data["error"]["message"], is_error=True)
        elif ctx.progress is not None and event.event in PROGRESS_EVENTS:
            ctx.progress(_progress_of(name, event))
    return answer
