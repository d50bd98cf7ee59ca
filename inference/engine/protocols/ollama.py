"""Ollama's native chat API (``POST /api/chat``, NDJSON streaming; docs/protocols.md B).

``think`` is passed through as Ollama's ``think`` (bool or level). ``options`` go into the
``options`` object, except ``format`` and ``keep_alive``, which Ollama reads only at the top
level of the body and would reject as unknown runtime options.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from ..errors import ModelError, UnsupportedInput
from ..media import normalize_image
from ..types import AdapterEvent, Finish, Message, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, Usage, UsageDelta
from .base import (
    OWN_OPTION_TYPES,
    ProtocolAdapter,
    RoundResult,
    ToolSpec,
    finish_reason,
    in_stream_error,
    loads,
    make_call,
    read_rest,
    tool_result_parts,
    truncated,
)
from .facts import ModelFacts
from .options import BOOLEAN, INTEGER, NUMBER, STRING_LIST, OptionType
from .sse import aiter_text_lines
from .think import ThinkSplitter, split_think

AUDIO_UNSUPPORTED = "audio input is not supported by the ollama protocol"
TOP_LEVEL_OPTIONS = ("format", "keep_alive")
# Ollama's runtime options (api.Options: a string where a list is expected, or a fraction for an
# integer, is refused by the server) and the two top-level fields above.
OPTION_TYPES: dict[str, OptionType] = {
    **OWN_OPTION_TYPES,
    **dict.fromkeys(
        ("num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx", "num_batch", "num_gpu", "main_gpu",
         "num_thread", "mirostat"),
        INTEGER,
    ),
    **dict.fromkeys(
        ("temperature", "top_p", "min_p", "typical_p", "repeat_penalty", "presence_penalty", "frequency_penalty",
         "mirostat_tau", "mirostat_eta", "tfs_z"),
        NUMBER,
    ),
    **dict.fromkeys(("penalize_newline", "numa", "use_mmap", "use_mlock", "low_vram", "vocab_only"), BOOLEAN),
    "stop": STRING_LIST,
    "format": OptionType(("string", "object"), choices=("json",)),  # "json", or a JSON schema
    "keep_alive": OptionType(("string", "number")),  # "5m", or seconds
}


class OllamaAdapter(ProtocolAdapter):
    label = "Ollama"
    accepts_audio = False  # /api/chat has no audio input
    option_types = OPTION_TYPES

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        options: Mapping[str, Any] | None = None,
        think: bool | str | None = None,
    ) -> AsyncIterator[AdapterEvent]:
        body = self.build_body(messages, tools, options=options, think=think, stream=True)
        splitter = ThinkSplitter()  # models without a thinking parser leave tags in content
        seen_ids: set[str] = set()
        has_calls = False
        last: dict[str, Any] | None = None
        async with self.open_stream("/api/chat", body) as response:
            # our splitter, not aiter_lines: that also splits on U+2028/U+0085 inside strings
            lines = aiter_text_lines(response.aiter_bytes())
            async for line in lines:
                if not line.strip():
                    continue
                data = loads(line)
                if not isinstance(data, dict):
                    continue
                if data.get("error") is not None:  # B.5: errors after a 200 arrive as lines
                    raise in_stream_error(data)
                message = data.get("message") or {}
                thinking, content = message.get("thinking"), message.get("content")
                if thinking and isinstance(thinking, str):
                    yield ReasoningDelta(thinking)
                if content and isinstance(content, str):
                    for kind, text in splitter.feed(content):
                        yield ReasoningDelta(text) if kind == "reasoning" else TextDelta(text)
                if message.get("tool_calls"):
                    for call in _calls(message, seen_ids):  # whole calls, one chunk each (B.2)
                        has_calls = True
                        yield ToolCallDelta(call)
                if data.get("done"):
                    last = data
                    await read_rest(lines)
                    break
        if last is None:
            raise truncated()
        for kind, text in splitter.flush():
            yield ReasoningDelta(text) if kind == "reasoning" else TextDelta(text)
        yield UsageDelta(_usage(last))
        yield Finish(finish_reason(last.get("done_reason"), has_calls))

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        options: Mapping[str, Any] | None = None,
        think: bool | str | None = None,
    ) -> RoundResult:
        body = self.build_body(messages, tools, options=options, think=think, stream=False)
        data = await self.request_json("POST", "/api/chat", body)
        if not isinstance(data, dict) or data.get("error") is not None:
            raise in_stream_error(data)
        message = data.get("message") or {}
        inline_reasoning, content = split_think(message.get("content") or "")
        calls = tuple(_calls(message, set()))
        return RoundResult(
            content=content,
            thinking=(message.get("thinking") or "") + inline_reasoning,
            tool_calls=calls,
            usage=_usage(data),
            finish_reason=finish_reason(data.get("done_reason"), bool(calls)),
        )

    async def list_models(self) -> list[dict[str, Any]]:
        data = await self.request_json("GET", "/api/tags")
        entries = data.get("models") if isinstance(data, dict) else None
        return [m for m in entries or [] if isinstance(m, dict)]

    async def model_facts(self, entry: Mapping[str, Any]) -> ModelFacts:
        """From ``/api/show``: ``capabilities`` (``"vision"``) and the context window, which is
        the modelfile's ``num_ctx`` when it sets one, else the model's trained length (B.4)."""
        name = entry.get("model") or entry.get("name")
        try:
            data = await self.request_json("POST", "/api/show", {"model": name})
        except ModelError:
            return ModelFacts()
        if not isinstance(data, dict):
            return ModelFacts()
        caps = data.get("capabilities")
        vision = "vision" in caps if isinstance(caps, list) and caps else None
        num_ctx = re.search(r"(?m)^\s*num_ctx\s+(\d+)", data.get("parameters") or "")
        info = data.get("model_info")
        trained = [v for k, v in info.items() if k.endswith(".context_length")] if isinstance(info, dict) else []
        context = int(num_ctx.group(1)) if num_ctx else next((v for v in trained if type(v) is int and v > 0), None)
        return ModelFacts(supports_vision=vision, context_window=context or None)

    def build_body(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        *,
        options: Mapping[str, Any] | None,
        think: bool | str | None,
        stream: bool,
    ) -> dict[str, Any]:
        runtime = self.wire_options(options)
        if self.model.max_output_tokens and "num_predict" not in runtime:  # the model's cap, unless the options set one
            runtime["num_predict"] = self.model.max_output_tokens
        # B-1: Ollama streams unless told otherwise, so "stream" is always explicit
        body: dict[str, Any] = {"model": self.model.model_name, "messages": wire_messages(messages), "stream": stream}
        body.update({key: runtime.pop(key) for key in TOP_LEVEL_OPTIONS if key in runtime})
        if runtime:
            body["options"] = runtime
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t["name"],
                        "description": t.get("description", ""),
                        "parameters": ollama_schema(t.get("parameters") or {}),
                    },
                }
                for t in tools
            ]
        if think is not None:
            body["think"] = think
        return body


def wire_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # a tool result's tool_name, when the message lacks it
    for m in messages:
        if m.role == "tool":
            text, images = tool_result_parts(m)
            name = m.tool_name or call_names.get(m.tool_call_id, "")
            msg: dict[str, Any] = {"role": "tool", "tool_name": name, "content": text}
            if m.tool_call_id:
                msg["tool_call_id"] = m.tool_call_id
            if images:  # C-10: Ollama takes images on the tool message itself
                msg["images"] = [b64 for _, b64 in images]
        elif m.role == "assistant":
            msg = {"role": "assistant", "content": m.text()}
            if m.thinking:
                msg["thinking"] = m.thinking
            if m.tool_calls:
                call_names.update((c.id, c.name) for c in m.tool_calls)
                msg["tool_calls"] = [_wire_call(c) for c in m.tool_calls]
        else:
            msg = {"role": m.role, "content": m.text()}
            if m.audio:
                raise UnsupportedInput(AUDIO_UNSUPPORTED)
            parts = m.content if isinstance(m.content, list) else []
            attached = [item.get("data", "") for item in parts if item.get("type") == "image"]
            attached += m.images
            if attached:  # B-2: bare base64 only
                msg["images"] = [normalize_image(img)[1] for img in attached]
        out.append(msg)
    return out


def _wire_call(call: ToolCall) -> dict[str, Any]:
    wired: dict[str, Any] = {"function": {"name": call.name, "arguments": dict(call.arguments)}}  # B-3: an object
    if call.id:
        wired["id"] = call.id
    return wired


def _calls(message: Mapping[str, Any], seen_ids: set[str]) -> Iterator[ToolCall]:
    for raw in message.get("tool_calls") or []:
        fn = (raw.get("function") or {}) if isinstance(raw, dict) else {}
        if isinstance(fn.get("name"), str) and fn["name"]:
            yield make_call(raw.get("id"), fn["name"], fn.get("arguments"), seen_ids)


def _usage(data: Mapping[str, Any]) -> Usage:
    prompt = int(data.get("prompt_eval_count") or 0)
    completion = int(data.get("eval_count") or 0)
    return Usage(prompt, completion, prompt + completion)


# ---- tool schemas (B-4) --------------------------------------------------------------------

# Keywords Ollama's schema struct drops silently; worth telling the model in the description.
_HINT_KEYWORDS = (
    "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "pattern", "format", "minItems", "maxItems", "uniqueItems", "examples",
)
_MAX_DEPTH = 32


def ollama_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Narrow a JSON Schema to what Ollama keeps: local ``$ref``s inlined, ``allOf`` merged,
    ``oneOf`` read as ``anyOf``, ``const`` as ``enum``, and the constraints Ollama would drop
    spelled out in ``description`` so the model still sees them."""
    narrowed = _narrow(schema, schema, (), 0)
    top: dict[str, Any] = {key: narrowed[key] for key in ("type", "properties", "required") if key in narrowed}
    top.setdefault("type", "object")
    top.setdefault("properties", {})
    return top


def _pointer(root: Mapping[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref.removeprefix("#").strip("/").split("/") if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any], refs: tuple[str, ...]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Inline a local ``$ref`` (siblings win over the target) and merge ``allOf`` parts."""
    out = dict(node)
    ref = out.pop("$ref", None)
    if isinstance(ref, str):
        target = _pointer(root, ref) if ref.startswith("#") and ref not in refs else None
        if isinstance(target, Mapping):
            refs = refs + (ref,)
            base, refs = _resolve(target, root, refs)
            out = {**base, **out}
        elif ref in refs:  # recursive type: stop here, but say what it was
            out.setdefault("type", "object")
            out.setdefault("description", f"(recursive: {ref.rsplit('/', 1)[-1]})")
    for part in out.pop("allOf", None) or []:
        if isinstance(part, Mapping):
            sub, _ = _resolve(part, root, refs)
            out["properties"] = {**(sub.get("properties") or {}), **(out.get("properties") or {})}
            out["required"] = list(dict.fromkeys([*(out.get("required") or []), *(sub.get("required") or [])]))
            out.update({k: v for k, v in sub.items() if k not in out})
    return out, refs


def _narrow(node: Any, root: Mapping[str, Any], refs: tuple[str, ...], depth: int) -> dict[str, Any]:
    if not isinstance(node, Mapping) or depth > _MAX_DEPTH:
        return {}
    node, refs = _resolve(node, root, refs)
    out: dict[str, Any] = {key: node[key] for key in ("type", "enum", "required") if node.get(key)}
    if "const" in node and "enum" not in out:
        out["enum"] = [node["const"]]
    if isinstance(node.get("properties"), Mapping):
        out["properties"] = {k: _narrow(v, root, refs, depth + 1) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), Mapping):
        out["items"] = _narrow(node["items"], root, refs, depth + 1)
    variants = node.get("anyOf") or node.get("oneOf")
    if isinstance(variants, list):
        out["anyOf"] = [_narrow(v, root, refs, depth + 1) for v in variants]
    hints = [f"{key}: {json.dumps(node[key], default=str)}" for key in _HINT_KEYWORDS if key in node]
    description = " ".join(filter(None, [node.get("description") or "", f"({'; '.join(hints)})" if hints else ""]))
    if description:
        out["description"] = description
    return out
