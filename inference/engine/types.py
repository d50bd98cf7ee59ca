"""Framework-free value types of the engine.

Everything that crosses the engine boundary is a frozen dataclass defined here. The Django
apps turn ORM rows into these (selectors) and turn results back into JSON; the engine never
sees a QuerySet. JSON shapes produced by ``to_dict()`` are the ones docs/api.md specifies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
# "tool_calls": the model called a client tool (``InferenceRequest.client_tools``); the run stops
# there and the caller runs it.
FinishReason = Literal["stop", "length", "max_tool_rounds", "cancelled", "error", "tool_calls"]
# "agent": another saved composition run as a sub-run; "client": run by the caller, not here.
ToolType = Literal["function", "mcp", "skill", "builtin", "agent", "client"]
ToolCallFormat = Literal["native", "auto"]

# A content item in MCP's shapes: {"type": "text", "text": ...}, {"type": "image", "data",
# "mimeType"}, {"type": "audio", "data", "mimeType"}, {"type": "resource", "resource": {...}}.
ContentItem = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AudioInput:
    data: str  # bare base64
    format: str  # "wav" | "mp3"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for. ``name`` is the model-facing name, ``tool_id`` ours."""

    id: str
    name: str
    arguments: Mapping[str, Any]
    tool_id: str = ""
    # Set when the model sent arguments that are not a JSON object; the call is answered
    # with an error result instead of being executed.
    arguments_error: str | None = None
    # "" for a structured call; "hermes" | "mistral" | "json" for a call the model wrote as
    # text (tool_call_format "auto"), which is fed back to it in the same form (textcalls.py).
    text_format: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tool_id": self.tool_id, "name": self.name, "arguments": dict(self.arguments)}


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str | list[ContentItem] = ""
    thinking: str = ""
    images: tuple[str, ...] = ()  # bare base64 or data: URIs (user messages)
    audio: tuple[AudioInput, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    # tool result messages
    tool_call_id: str = ""
    tool_id: str = ""
    tool_name: str = ""  # model-facing name of the tool that produced this result
    is_error: bool = False
    duration_ms: float | None = None
    # user messages built from a prompt template keep where they came from
    prompt_template: str | None = None
    arguments: Mapping[str, Any] | None = None
    # an assistant message cut short by a disconnect or a cancel
    incomplete: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """A message from its JSON shape: a request's ``messages`` item, or a stored record."""
        calls = tuple(
            ToolCall(id=str(c.get("id", "")), name=str(c.get("name", "")), arguments=c.get("arguments") or {},
                     tool_id=str(c.get("tool_id", "")))
            for c in data.get("tool_calls") or ()
        )
        template = data.get("prompt_template")
        content = data.get("content") or ""
        return cls(
            role=data.get("role", "user"),
            content=content if isinstance(content, (str, list)) else str(content),
            thinking=data.get("thinking") or "",
            images=tuple(data.get("images") or ()),
            audio=tuple(AudioInput(a["data"], a["format"]) for a in data.get("audio") or ()),
            tool_calls=calls,
            tool_call_id=data.get("tool_call_id") or "",
            tool_id=data.get("tool_id") or "",
            tool_name=data.get("tool_name") or "",
            is_error=bool(data.get("is_error")),
            duration_ms=data.get("duration_ms"),
            prompt_template=template,
            arguments=data.get("arguments") if template else None,
            incomplete=bool(data.get("incomplete")),
        )

    def text(self) -> str:
        """The message's text; for tool results, the text items joined."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(item.get("text", "") for item in self.content if item.get("type") == "text")

    def to_dict(self) -> dict[str, Any]:
        if self.role == "tool":
            out: dict[str, Any] = {
                "role": "tool",
                "tool_call_id": self.tool_call_id,
                "tool_id": self.tool_id,
                "content": self.content if isinstance(self.content, list) else [{"type": "text", "text": self.content}],
                "is_error": self.is_error,
            }
            if self.duration_ms is not None:
                out["duration_ms"] = self.duration_ms
            return out
        out = {"role": self.role, "content": self.content}
        if self.thinking:
            out["thinking"] = self.thinking
        if self.tool_calls:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.images:
            out["images"] = list(self.images)
        if self.audio:
            out["audio"] = [{"data": a.data, "format": a.format} for a in self.audio]
        if self.prompt_template is not None:
            out["prompt_template"] = self.prompt_template
            out["arguments"] = dict(self.arguments or {})
        if self.incomplete:
            out["incomplete"] = True
        return out


@dataclass(frozen=True, slots=True)
class ModelConfig:
    model_id: str
    api_protocol: str  # a key of inference.engine.protocols.ADAPTERS
    api_base: str
    model_name: str
    api_key: str | None = None  # already resolved (no ${VAR} left)
    display_name: str = ""
    context_window: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    supports_vision: bool = False
    supports_audio: bool = False
    timeout_s: float = 300.0
    enabled: bool = True
    # Sent as the protocol's own output cap (max_tokens / num_predict) unless the options set
    # one, so a run-on model cannot stream forever; None sends none.
    max_output_tokens: int | None = 4096
    # "native": only structured tool calls; "auto": also calls a model writes as text.
    tool_call_format: ToolCallFormat = "native"


@dataclass(frozen=True, slots=True)
class ToolConfig:
    """A registered tool. Which fields matter depends on ``tool_type`` (see docs/api.md)."""

    tool_id: str
    tool_type: ToolType
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    enabled: bool = True
    callable: str | None = None  # "pkg.module:function"
    endpoint: str | None = None  # URL the runtime POSTs {"arguments": ...} to
    server: str | None = None  # mcp
    remote_name: str | None = None  # mcp
    skill: str | None = None  # skill name
    skill_path: str | None = None  # skill folder on disk
    timeout_s: float | None = None
    # SDK only: an in-process Python function (set by the @tool decorator)
    fn: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_id: str
    content: tuple[ContentItem, ...]
    is_error: bool = False
    structured: Any = None
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool_id": self.tool_id,
            "is_error": self.is_error,
            "duration_ms": round(self.duration_ms, 3),
            "content": list(self.content),
            "structured": self.structured,
        }

    def with_duration(self, duration_ms: float) -> ToolResult:
        return replace(self, duration_ms=duration_ms)


def text_result(tool_id: str, text: str, *, is_error: bool = False, structured: Any = None) -> ToolResult:
    return ToolResult(tool_id=tool_id, content=({"type": "text", "text": text},), is_error=is_error, structured=structured)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    model_id: str
    messages: tuple[Message, ...] = ()
    tool_ids: tuple[str, ...] = ()
    max_tool_rounds: int = 10
    options: Mapping[str, Any] = field(default_factory=dict)
    think: bool | str | None = None
    session_id: str | None = None
    # Tools the caller runs itself (tool_type "client"), offered under their own names.
    client_tools: tuple[ToolConfig, ...] = ()
    # Sent first, before any history, and never echoed or stored (an agent's system prompt).
    preamble: tuple[Message, ...] = ()

    @classmethod
    def of(cls, model_id: str, text: str | None = None, **kwargs: Any) -> InferenceRequest:
        """Convenience for SDK users: ``InferenceRequest.of("m", "hi", tool_ids=["x"])``."""
        messages = tuple(kwargs.pop("messages", ()))
        if text is not None:
            messages += (Message(role="user", content=text),)
        if "tool_ids" in kwargs:
            kwargs["tool_ids"] = tuple(kwargs["tool_ids"])
        return cls(model_id=model_id, messages=messages, **kwargs)


@dataclass(frozen=True, slots=True)
class InferenceResult:
    model_id: str
    messages: tuple[Message, ...]
    content: str
    thinking: str
    finish_reason: FinishReason
    tool_rounds: int
    usage: Usage
    session_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "model_id": self.model_id,
            "messages": [m.to_dict() for m in self.messages],
            "content": self.content,
            "thinking": self.thinking,
            "finish_reason": self.finish_reason,
            "tool_rounds": self.tool_rounds,
            "usage": self.usage.to_dict(),
        }


# ---- events a protocol adapter yields while streaming one model round ----------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A complete tool call assembled by the adapter (name is the model-facing name)."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class UsageDelta:
    usage: Usage


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str  # the upstream finish/done reason, normalised: stop | length | tool_calls


AdapterEvent = TextDelta | ReasoningDelta | ToolCallDelta | UsageDelta | Finish


# ---- events the runtime yields to clients (names and payloads as docs/api.md's SSE table) -------

StreamEventName = Literal[
    "session", "delta", "tool_call", "tool_progress", "tool_result", "message", "done", "error", "ping"
]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    event: StreamEventName
    data: Mapping[str, Any]
