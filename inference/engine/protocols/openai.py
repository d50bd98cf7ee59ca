"""OpenAI Chat Completions (OpenAI, vLLM, llama.cpp, LiteLLM, DeepSeek, DashScope, Ollama /v1).

``think`` mapping (the field names each server family understands, docs/protocols.md A.2):

* ``None``: nothing is sent; the server's default applies.
* ``True`` / ``False``: ``chat_template_kwargs: {"enable_thinking": ...}`` (vLLM and llama.cpp
  with Qwen3-style hybrid templates). Real OpenAI rejects that field: leave ``think`` unset
  for it.
* a string level (``"low"`` … ``"max"``): ``reasoning_effort`` (OpenAI reasoning models,
  DeepSeek, Ollama /v1).

Explicit ``options`` win over the mapping. ``think_prefilled`` (adapter setting) starts
streams inside a ``<think>`` block; ``reasoning_field`` replays assistant reasoning under that
name (``reasoning_content`` for DeepSeek thinking mode with tools, ``reasoning`` for vLLM).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelUnavailable
from ..media import image_data_uri, normalize_audio
from ..types import (
    AdapterEvent,
    Finish,
    Message,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageDelta,
)
from .base import (
    OWN_OPTION_TYPES,
    ProtocolAdapter,
    RoundResult,
    ToolSpec,
    finish_reason,
    in_stream_error,
    loads,
    make_call,
    model_error,
    read_rest,
    tool_result_parts,
    truncated,
)
from .options import BOOLEAN, INTEGER, NUMBER, OBJECT, STRING, STRING_LIST, OptionType
from .sse import aiter_sse
from .think import Piece, ThinkSplitter, split_think

log = logging.getLogger(__name__)

NO_CHOICES = "the model server answered without a choice"
# Said to the model in the tool message, because OpenAI tool messages are text-only.
IMAGES_ATTACHED = "[{count} image(s) returned by this tool; attached in the next user message]"
# Introduces the follow-up user message so the model reads the images as tool output.
IMAGES_INTRO = "Images returned by the tool calls above:"
# Options that cap the answer's length: with one of them set, max_output_tokens is not sent.
OUTPUT_CAPS = frozenset({"max_tokens", "max_completion_tokens"})


# Chat Completions body fields (OpenAI's reference, plus the sampling extras vLLM and llama.cpp read).
OPTION_TYPES: dict[str, OptionType] = {
    **OWN_OPTION_TYPES,
    **dict.fromkeys(("temperature", "top_p", "presence_penalty", "frequency_penalty", "min_p", "repetition_penalty"), NUMBER),
    **dict.fromkeys(("n", "max_tokens", "max_completion_tokens", "seed", "top_logprobs", "top_k"), INTEGER),
    **dict.fromkeys(("logprobs", "parallel_tool_calls", "store"), BOOLEAN),
    **dict.fromkeys(("reasoning_effort", "user", "service_tier", "verbosity"), STRING),
    **dict.fromkeys(
        ("logit_bias", "response_format", "stream_options", "chat_template_kwargs", "metadata", "prediction", "audio"), OBJECT
    ),
    "stop": OptionType(("string", "string_list")),
    "tool_choice": OptionType(("string", "object")),
    "modalities": STRING_LIST,
}


class OpenAIAdapter(ProtocolAdapter):
    label = "OpenAI-compatible"
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
        # With thinking switched off the template pre-fills nothing that needs closing.
        state = _StreamState(ThinkSplitter(prefilled=bool(self.setting(options, "think_prefilled")) and think is not False))
        async with self.open_stream("/chat/completions", body) as response:
            if "json" in response.headers.get("content-type", ""):  # a server that ignored "stream"
                for event in _result_events(_parse_completion(loads((await response.aread()).decode()))):
                    yield event
                return
            events = aiter_sse(response.aiter_bytes())
            async for sse in events:
                if sse.data.strip() == "[DONE]":
                    state.done = True
                    await read_rest(events)
                    break
                chunk = loads(sse.data)
                if sse.type == "error" or (isinstance(chunk, dict) and chunk.get("error") is not None):
                    raise in_stream_error(chunk)
                for event in state.feed(chunk):
                    yield event
        if not (state.done or state.finish_raw):  # EOF without [DONE] and without finish
            raise truncated()
        for event in state.finish():
            yield event

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        options: Mapping[str, Any] | None = None,
        think: bool | str | None = None,
    ) -> RoundResult:
        body = self.build_body(messages, tools, options=options, think=think, stream=False)
        data = await self.request_json("POST", "/chat/completions", body)
        if isinstance(data, dict) and data.get("error") is not None:
            raise in_stream_error(data)
        return _parse_completion(data)

    async def list_models(self) -> list[dict[str, Any]]:
        data = await self.request_json("GET", "/models")
        if not isinstance(data, dict):
            return []
        # llama.cpp lists its models twice: ``data`` and an Ollama-style ``models`` whose
        # ``capabilities`` say "multimodal"; model detection reads both (facts.py).
        twins = {m.get("model") or m.get("name"): m for m in data.get("models") or [] if isinstance(m, dict)}
        out = []
        for entry in data.get("data") or []:
            if not isinstance(entry, dict):
                continue
            twin = twins.get(entry.get("id"))
            if twin is not None and isinstance(twin.get("capabilities"), list) and "capabilities" not in entry:
                entry = {**entry, "capabilities": twin["capabilities"]}
            out.append(entry)
        return out

    # ---- request ---------------------------------------------------------------------------

    def build_body(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        *,
        options: Mapping[str, Any] | None,
        think: bool | str | None,
        stream: bool,
    ) -> dict[str, Any]:
        body = self.wire_options(options)
        if self.model.max_output_tokens and not OUTPUT_CAPS & body.keys():  # the model's cap, unless the options set one
            body["max_tokens"] = self.model.max_output_tokens
        body.update(
            model=self.model.model_name,
            messages=wire_messages(messages, reasoning_field=self.setting(options, "reasoning_field")),
            stream=stream,
        )
        if stream:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        else:
            body.pop("stream_options", None)  # only valid with stream: true
        if tools:
            body["tools"] = [wire_tool(t) for t in tools]
        if isinstance(think, str):
            body.setdefault("reasoning_effort", think)
        elif isinstance(think, bool):
            kwargs = dict(body.get("chat_template_kwargs") or {})
            kwargs.setdefault("enable_thinking", think)
            body["chat_template_kwargs"] = kwargs
        return body


def wire_tool(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": spec["name"],
            "description": spec.get("description", ""),
            "parameters": spec.get("parameters") or {"type": "object", "properties": {}},
        },
    }


def wire_messages(messages: Sequence[Message], *, reasoning_field: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    pending_images: list[str] = []  # data URIs from tool results, sent after the tool block
    for m in messages:
        if m.role != "tool" and pending_images:
            out.append(_images_message(pending_images))
            pending_images = []
        if m.role == "tool":
            text, images = tool_result_parts(m)
            if images:
                note = IMAGES_ATTACHED.format(count=len(images))
                text = f"{text}\n{note}" if text else note
                pending_images += [f"data:{mime};base64,{b64}" for mime, b64 in images]
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": text})
        elif m.role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.text()}
            if m.tool_calls:
                msg["content"] = m.text() or None
                msg["tool_calls"] = [_wire_call(c) for c in m.tool_calls]
            if reasoning_field and (m.thinking or m.tool_calls):  # DeepSeek wants it even empty
                msg[reasoning_field] = m.thinking
            out.append(msg)
        elif m.role == "user":
            out.append({"role": "user", "content": _user_content(m)})
        else:
            out.append({"role": m.role, "content": m.text()})
    if pending_images:
        out.append(_images_message(pending_images))
    return out


def _wire_call(call: ToolCall) -> dict[str, Any]:
    # arguments travel as a JSON string
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))}}


def _images_message(uris: list[str]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": IMAGES_INTRO}]
    parts += [{"type": "image_url", "image_url": {"url": uri}} for uri in uris]
    return {"role": "user", "content": parts}


def _user_content(m: Message) -> str | list[dict[str, Any]]:
    if isinstance(m.content, str) and not m.images and not m.audio:
        return m.content
    parts: list[dict[str, Any]] = []
    items = [{"type": "text", "text": m.content}] if isinstance(m.content, str) else list(m.content)
    for item in items:
        if item.get("type") == "text" and item.get("text"):
            parts.append({"type": "text", "text": item["text"]})
        elif item.get("type") == "image":
            parts.append({"type": "image_url", "image_url": {"url": image_data_uri(item.get("data", ""))}})
    parts += [{"type": "image_url", "image_url": {"url": image_data_uri(img)}} for img in m.images]
    for audio in m.audio:
        fmt, data = normalize_audio(audio.data, audio.format)
        parts.append({"type": "input_audio", "input_audio": {"data": data, "format": fmt}})
    return parts


# ---- response ------------------------------------------------------------------------------


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    return Usage(prompt, completion, int(raw.get("total_tokens") or prompt + completion))


def _reasoning(part: Mapping[str, Any]) -> str:
    value = part.get("reasoning_content") or part.get("reasoning")  # both names exist
    return value if isinstance(value, str) else ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # a list of text parts
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""  # null is no text


def _parse_completion(data: Any) -> RoundResult:
    choices = data.get("choices") if isinstance(data, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    if choice is None:
        raise model_error(ModelUnavailable, NO_CHOICES, None, json.dumps(data, default=str)[:500])
    message = choice.get("message") or {}
    inline_reasoning, content = split_think(_text(message.get("content")))
    seen: set[str] = set()
    calls = []
    for raw in message.get("tool_calls") or []:
        fn = (raw.get("function") or {}) if isinstance(raw, dict) else {}
        if fn.get("name"):
            calls.append(make_call(raw.get("id"), fn["name"], fn.get("arguments"), seen))
    return RoundResult(
        content=content,
        thinking=_reasoning(message) + inline_reasoning,
        tool_calls=tuple(calls),
        usage=_usage(data.get("usage")) or Usage(),
        finish_reason=finish_reason(choice.get("finish_reason"), bool(calls)),
    )


def _result_events(result: RoundResult) -> list[AdapterEvent]:
    events: list[AdapterEvent] = []
    if result.thinking:
        events.append(ReasoningDelta(result.thinking))
    if result.content:
        events.append(TextDelta(result.content))
    events += [ToolCallDelta(call) for call in result.tool_calls]
    events += [UsageDelta(result.usage), Finish(result.finish_reason)]
    return events


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    pieces: list[str] = field(default_factory=list)
    whole: dict[str, Any] | None = None  # some proxies send the arguments as an object


class _CallAssembler:
    """Builds tool calls from streamed fragments (A.6 rules plus the A-1/A-2 fallbacks).

    Fragments are keyed by ``index``; a known index arriving with a *different* id starts a new
    call (servers that number every parallel call 0). Without an index: by ``id``; without
    either, a fragment continues the latest call unless it names a new function while the
    latest is already named. Names may arrive after arguments (A-2).
    """

    def __init__(self) -> None:
        self.calls: list[_PartialCall] = []
        self._by_index: dict[int, _PartialCall] = {}
        self._by_id: dict[str, _PartialCall] = {}

    def add(self, fragments: Any) -> None:
        for frag in fragments if isinstance(fragments, list) else []:
            if isinstance(frag, dict):
                self._merge(self._slot(frag), frag)

    def _new(self) -> _PartialCall:
        call = _PartialCall()
        self.calls.append(call)
        return call

    def _slot(self, frag: dict[str, Any]) -> _PartialCall:
        cid = frag.get("id") or ""
        index = frag.get("index")
        if isinstance(index, int):
            call = self._by_index.get(index)
            if call is None or (cid and call.id and cid != call.id):
                call = self._by_index[index] = self._new()
            return call
        if cid:
            return self._by_id.get(cid) or self._new()
        name = (frag.get("function") or {}).get("name")
        if self.calls and not (name and self.calls[-1].name):
            return self.calls[-1]
        return self._new()

    def _merge(self, call: _PartialCall, frag: dict[str, Any]) -> None:
        cid = frag.get("id")
        if isinstance(cid, str) and cid and not call.id:
            call.id = cid
            self._by_id[cid] = call
        fn = frag.get("function") or {}
        if isinstance(fn.get("name"), str) and fn["name"] and not call.name:  # never append names
            call.name = fn["name"]
        args = fn.get("arguments")
        if isinstance(args, str):
            call.pieces.append(args)
        elif isinstance(args, dict):
            call.whole = args

    def result(self) -> list[ToolCall]:
        seen: set[str] = set()
        out = []
        for call in self.calls:
            if not call.name:
                log.warning("dropping a streamed tool call without a function name (id=%r)", call.id)
                continue
            raw = call.whole if call.whole is not None else "".join(call.pieces)
            out.append(make_call(call.id, call.name, raw, seen))
        return out


class _StreamState:
    def __init__(self, splitter: ThinkSplitter) -> None:
        self.splitter = splitter
        self.calls = _CallAssembler()
        self.usage: Usage | None = None
        self.finish_raw: str | None = None
        self.done = False

    def feed(self, chunk: Any) -> list[AdapterEvent]:
        if not isinstance(chunk, dict):
            return []
        self.usage = _usage(chunk.get("usage")) or self.usage  # any chunk may carry it
        events: list[AdapterEvent] = []
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) not in (0, None):
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            reasoning = _reasoning(delta)
            if reasoning:
                self.splitter.cancel_prefill()  # the server parses reasoning itself
                events.append(ReasoningDelta(reasoning))
            text = _text(delta.get("content"))
            if text:
                events += _pieces(self.splitter.feed(text))
            if delta.get("tool_calls"):
                self.calls.add(delta["tool_calls"])
            if choice.get("finish_reason"):
                self.finish_raw = choice["finish_reason"]
        return events

    def finish(self) -> list[AdapterEvent]:
        events = _pieces(self.splitter.flush())
        calls = self.calls.result()
        events += [ToolCallDelta(call) for call in calls]
        if self.usage is not None:
            events.append(UsageDelta(self.usage))
        events.append(Finish(finish_reason(self.finish_raw, bool(calls))))
        return events


def _pieces(pieces: list[Piece]) -> list[AdapterEvent]:
    return [ReasoningDelta(text) if kind == "reasoning" else TextDelta(text) for kind, text in pieces]
