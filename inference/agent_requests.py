"""An agent named in a request (``"agent": "researcher"``): its fields become the defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.selectors import agent_get_for_user
from inference.engine import render_template


def _system_message(agent: Any, arguments: Mapping[str, Any]) -> dict[str, Any] | None:
    if agent.prompt_template:
        return {"role": "system", "prompt_template": agent.prompt_template, "arguments": dict(arguments)}
    if agent.system_prompt:
        return {"role": "system", "content": render_template(agent.system_prompt, arguments)}
    return None


def agent_defaults(*, user: Any, data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The request with its agent's fields as defaults (sync: reads the database).

    Fields given in the request win; ``tool_ids`` given replaces the agent's; ``options`` are
    merged key by key. The agent's system prompt goes first and is never echoed or stored.
    """
    name = data.get("agent")
    if not name:
        return data
    agent = agent_get_for_user(name=name, user=user)
    merged: dict[str, Any] = {
        "model_id": agent.model_id, "tool_ids": list(agent.tool_ids or []), "max_tool_rounds": agent.max_tool_rounds,
        "think": agent.think,
    }
    merged.update(data)
    merged["options"] = {**(agent.options or {}), **(data.get("options") or {})}
    system = _system_message(agent, data.get("arguments") or {})
    merged["agent_system"] = [system] if system else []
    return merged
