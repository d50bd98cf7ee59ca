"""Inference services: turn a validated request into a PreparedRun from the database."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from inference.engine.errors import ToolNotFound
from inference.engine.registries import TemplateSource
from inference.engine.runtime import Limits, PreparedRun, Runtime, resolve_templates, validate_inputs
from inference.engine.tools.base import ToolContext
from inference.engine.types import AudioInput, Message, ToolCall, ToolConfig
from registry.mcp_services import mcp_ensure_configured
from registry.models import Tool
from registry.services import model_config_get, tool_configs_all, tool_configs_get, tool_to_config
from templates_app.services import template_get

# Engine executors register themselves on import; importing here wires every tool type.
from inference.engine import mcp as _mcp  # noqa: F401  (mcp executor)
from inference.engine import skills as _skills  # noqa: F401  (skill executor)
from inference.engine.tools import builtins as _builtins  # noqa: F401  (bash, fetch)
from inference.engine.tools import functions as _functions  # noqa: F401  (function, endpoint)


class DbTemplates(TemplateSource):
    def get_content(self, name: str) -> str:
        return template_get(id_or_name=name).content


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    """One runtime per process; rebuilt when settings change (tests override AGENTSITE)."""
    conf = settings.AGENTSITE
    limits = Limits(
        max_image_bytes=conf["MAX_IMAGE_BYTES"],
        max_audio_bytes=conf["MAX_AUDIO_BYTES"],
        tool_timeout_s=conf["TOOL_TIMEOUT_S"],
        max_tool_rounds_limit=conf["MAX_TOOL_ROUNDS_LIMIT"],
    )
    return Runtime(template_registry=DbTemplates(), limits=limits, settings=conf)


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "AGENTSITE":
        get_runtime.cache_clear()


def message_from_json(data: Mapping[str, Any]) -> Message:
    calls = tuple(
        ToolCall(id=str(c.get("id", "")), name=str(c.get("name", "")), arguments=c.get("arguments") or {}, tool_id=str(c.get("tool_id", "")))
        for c in data.get("tool_calls") or ()
    )
    return Message(
        role=data.get("role", "user"),
        content=data.get("content") or "",
        thinking=data.get("thinking") or "",
        images=tuple(data.get("images") or ()),
        audio=tuple(AudioInput(a["data"], a["format"]) for a in data.get("audio") or ()),
        tool_calls=calls,
        tool_call_id=data.get("tool_call_id") or "",
        tool_id=data.get("tool_id") or "",
        is_error=bool(data.get("is_error")),
        prompt_template=data.get("prompt_template"),
        arguments=data.get("arguments") if data.get("prompt_template") else None,
    )


def input_messages(data: Mapping[str, Any]) -> tuple[Message, ...]:
    """The request's messages with templates resolved; ``text`` is one more user message."""
    messages = [message_from_json(m) for m in data.get("messages") or ()]
    if "text" in data:
        messages.append(Message(role="user", content=data["text"]))
    return resolve_templates(messages, get_runtime().templates)


def scratch_dir_for(session_id: str | None) -> str:
    root = Path(settings.AGENTSITE["DATA_DIR"]) / "scratch" / (session_id or "stateless")
    return str(root)


def tool_lookup_for(tools: list[ToolConfig]) -> dict[str, ToolConfig]:
    if not any(t.tool_type == "skill" for t in tools):
        return {}
    lookup: dict[str, ToolConfig] = {}
    for t in tool_configs_all():
        lookup.setdefault(t.name.lower(), t)
        lookup.setdefault(t.tool_id.lower(), t)
    return lookup


def prepare_run(
    *, data: Mapping[str, Any], history: tuple[Message, ...] = (), session_id: str | None = None
) -> PreparedRun:
    """Resolve model, tools and templates, and refuse what the model can't take (sync: ORM)."""
    runtime = get_runtime()
    model = model_config_get(model_id=data["model_id"])
    tools = tool_configs_get(tool_ids=data.get("tool_ids") or ())
    mcp_ensure_configured(tools)
    new = input_messages(data)
    validate_inputs(model, new, runtime.limits)
    return PreparedRun(
        model=model,
        messages=history + new,
        tools=tuple(tools),
        input_messages=new,
        max_tool_rounds=data.get("max_tool_rounds", 10),
        options=data.get("options") or {},
        think=data.get("think"),
        session_id=session_id,
        context=tool_context(session_id=session_id),
        tool_lookup=tool_lookup_for(tools),
    )


def tool_for_call(*, data: Mapping[str, Any]) -> ToolConfig:
    """The tool a direct call names: ``tool_id``, or MCP ``server`` + ``tool``."""
    if "tool_id" in data:
        tool = tool_configs_get(tool_ids=[data["tool_id"]])[0]
        mcp_ensure_configured([tool])
        return tool
    row = Tool.objects.select_related("server", "skill").filter(
        tool_type="mcp", server__name=data["server"], remote_name=data["tool"], enabled=True
    ).first()
    if row is None:
        raise ToolNotFound(f"No enabled tool {data['tool']!r} on MCP server {data['server']!r}.")
    tool = tool_to_config(row)
    mcp_ensure_configured([tool])
    return tool


def tool_context(*, session_id: str | None = None) -> ToolContext:
    return ToolContext(session_id=session_id, scratch_dir=scratch_dir_for(session_id), settings=settings.AGENTSITE)

