"""Ollama native adapter against hand-written wire payloads (docs/protocols.md B)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from inference.engine.errors import ModelUnavailable, UnsupportedInput
from inference.engine.protocols import get_adapter
from inference.engine.protocols.base import TRUNCATED
from inference.engine.protocols.ollama import AUDIO_UNSUPPORTED, ollama_schema
from inference.engine.types import (
    AudioInput,
    Finish,
    Message,
    ModelConfig,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageDelta,
)
from tests.engine.upstream import Server, streamed

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
MODEL = ModelConfig(model_id="m", api_protocol="ollama", api_base="http://ollama.test:11434", model_name="qwen3:8b")
DONE = {"done": True, "done_reason": "stop", "total_duration": 182242375, "prompt_eval_count": 169, "eval_count": 15}


def ndjson(*lines: Any, split: int | None = None):
    raw = "".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines).encode()
    return streamed(raw, "application/x-ndjson", split)


def msg(**fields: Any) -> dict[str, Any]:
    return {"model": "qwen3:8b", "message": {"role": "assistant", "content": "", **fields}, "done": False}


async def collect(messages: tuple[Message, ...] = (Message("user", "hi"),), **kw: Any) -> list[Any]:
    return [e async for e in get_adapter(MODEL).stream(messages, **kw)]


async def test_it_streams_thinking_text_tool_calls_and_usage(server: Server) -> None:
    server.handler = ndjson(
        msg(thinking="The user wants"),
        msg(content="It is"),
        msg(tool_calls=[{"id": "call_x", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}}}]),
        msg(tool_calls=[{"function": {"name": "get_time", "arguments": {}}}]),  # older servers: no id
        {**msg(), **DONE},
        split=9,
    )
    events = await collect(
        options={"temperature": 0.2, "num_ctx": 8192, "keep_alive": "10m", "think_prefilled": True}, think="high"
    )
    generated = events[3].call.id
    assert generated.startswith("call_")
    assert events == [
        ReasoningDelta("The user wants"),
        TextDelta("It is"),
        ToolCallDelta(ToolCall("call_x", "get_weather", {"city": "Oslo"})),
        ToolCallDelta(ToolCall(generated, "get_time", {})),
        UsageDelta(Usage(169, 15, 184)),
        Finish("tool_calls"),  # B-8: Ollama never says so itself
    ]
    assert str(server.requests[0].url) == "http://ollama.test:11434/api/chat"
    assert server.body == {
        "model": "qwen3:8b",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "keep_alive": "10m",
        "options": {"temperature": 0.2, "num_ctx": 8192, "num_predict": 4096},  # num_predict: max_output_tokens
        "think": "high",
    }


async def test_done_reason_length(server: Server) -> None:
    server.handler = ndjson(msg(content="abc"), {**msg(), **DONE, "done_reason": "length"})
    assert (await collect())[-1] == Finish("length")


async def test_unicode_separators_in_content_do_not_break_lines(server: Server) -> None:
    server.handler = ndjson(msg(content="a\u2028b\u0085c"), {**msg(), **DONE})
    assert (await collect())[0] == TextDelta("a\u2028b\u0085c")


async def test_an_error_line_after_a_200(server: Server) -> None:
    server.handler = ndjson(msg(content="x"), {"error": "an error was encountered while running the model"})
    with pytest.raises(ModelUnavailable, match="while running the model") as exc:
        await collect()
    assert exc.value.detail["upstream_message"] == "an error was encountered while running the model"


async def test_a_stream_without_its_done_line_is_truncated(server: Server) -> None:
    server.handler = ndjson(msg(content="x"))
    with pytest.raises(ModelUnavailable, match=TRUNCATED):
        await collect()


async def test_unknown_model_is_model_unavailable_with_the_upstream_404(server: Server) -> None:
    server.handler = lambda r: httpx.Response(404, json={"error": 'model "nope" not found, try pulling it first'})
    with pytest.raises(ModelUnavailable) as exc:
        await collect()
    assert exc.value.detail == {"upstream_status": 404, "upstream_message": 'model "nope" not found, try pulling it first'}


async def test_complete_sends_stream_false_and_reads_one_object(server: Server) -> None:
    server.handler = lambda r: httpx.Response(200, json={
        "model": "qwen3:8b",
        "message": {"role": "assistant", "content": "", "thinking": "hmm",
                    "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Toronto"}}}]},
        **DONE,
    })
    result = await get_adapter(MODEL).complete([Message("user", "hi")], think=False)
    assert server.body["stream"] is False and server.body["think"] is False  # B-1
    assert result.thinking == "hmm" and result.content == ""
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_weather", {"city": "Toronto"})]
    assert result.usage == Usage(169, 15, 184) and result.finish_reason == "tool_calls"


async def test_list_models(server: Server) -> None:
    server.handler = lambda r: httpx.Response(200, json={"models": [{"name": "qwen3:8b", "model": "qwen3:8b"}]})
    assert await get_adapter(MODEL).list_models() == [{"name": "qwen3:8b", "model": "qwen3:8b"}]
    assert str(server.requests[0].url) == "http://ollama.test:11434/api/tags"


async def test_history_replay(server: Server) -> None:
    server.handler = ndjson({**msg(content="ok"), **DONE})
    history = (
        Message("user", "look", images=(f"data:image/png;base64,{PNG}",)),
        Message("assistant", "", thinking="need a photo", tool_calls=(ToolCall("c1", "snap", {"zoom": 2}),)),
        Message(
            "tool", [{"type": "text", "text": "here"}, {"type": "image", "data": PNG, "mimeType": "image/png"}], tool_call_id="c1"
        ),
    )
    await collect(
        history,
        tools=[
            {
                "name": "snap",
                "description": "Take a photo",
                "parameters": {"type": "object", "properties": {"zoom": {"type": "integer", "minimum": 1}}},
            }
        ],
    )
    assert server.body["messages"] == [
        {"role": "user", "content": "look", "images": [PNG]},  # B-2: bare base64
        {"role": "assistant", "content": "", "thinking": "need a photo",
         "tool_calls": [{"id": "c1", "function": {"name": "snap", "arguments": {"zoom": 2}}}]},  # B-3: an object
        {"role": "tool", "tool_name": "snap", "tool_call_id": "c1", "content": "here", "images": [PNG]},
    ]
    assert server.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "snap",
                "description": "Take a photo",
                "parameters": {"type": "object", "properties": {"zoom": {"type": "integer", "description": "(minimum: 1)"}}},
            },
        }
    ]


async def test_audio_is_rejected_before_any_request(server: Server) -> None:
    with pytest.raises(UnsupportedInput, match=AUDIO_UNSUPPORTED) as exc:
        await collect((Message("user", "listen", audio=(AudioInput("UklGRg==", "wav"),)),))
    assert exc.value.status == 400 and exc.value.code == "unsupported_input"
    assert server.requests == []


def test_schemas_are_flattened_for_ollama() -> None:
    schema = {
        "type": "object",
        "$defs": {
            "Unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
            "Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}},
        },
        "properties": {
            "city": {"type": "string", "description": "City name", "minLength": 1, "format": "hostname"},
            "unit": {"$ref": "#/$defs/Unit", "description": "Temperature unit"},
            "mode": {"const": "fast"},
            "when": {"oneOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
            "tree": {"$ref": "#/$defs/Node"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3},
        },
        "allOf": [{"properties": {"extra": {"type": "boolean"}}, "required": ["extra"]}],
        "required": ["city"],
        "additionalProperties": False,
    }
    assert ollama_schema(schema) == {
        "type": "object",
        "required": ["city", "extra"],
        "properties": {
            "city": {"type": "string", "description": 'City name (minLength: 1; format: "hostname")'},
            "unit": {"type": "string", "enum": ["c", "f"], "description": 'Temperature unit (default: "c")'},
            "mode": {"enum": ["fast"]},
            "when": {"anyOf": [{"type": "string", "description": '(format: "date")'}, {"type": "null"}]},
            "tree": {"type": "object", "properties": {"child": {"type": "object", "description": "(recursive: Node)"}}},
            "tags": {
                "type": "array",
                "items": {"type": "string", "description": "(maxLength: 5)"},
                "description": "(maxItems: 3)",
            },
            "extra": {"type": "boolean"},
        },
    }


def test_an_empty_schema_becomes_an_empty_object() -> None:
    assert ollama_schema({}) == {"type": "object", "properties": {}}


async def test_chunks_are_read_as_the_standard_json_module_reads_them(server: Server) -> None:
    big = 2**70 + 1  # beyond 64 bits: a fast JSON reader would make it a float
    call = {"id": "call_x", "function": {"name": "pay", "arguments": {"cents": big, "ok": True}}}
    server.handler = ndjson(
        '{"model": "m", "message": {"role": "assistant", "content": "", "thinking": "NaN: ", "ratio": NaN}, "done": false}',
        '{"model": "m", "message": {"role": "assistant", "content": "\\ud83c\\udf0d \\ud800"}, "done": false}',
        msg(tool_calls=[call]),
        {**msg(), **DONE},
    )
    events = await collect()
    assert events[:2] == [ReasoningDelta("NaN: "), TextDelta("🌍 \ud800")]
    (got,) = [e.call for e in events if isinstance(e, ToolCallDelta)]
    assert got.arguments == {"cents": big, "ok": True} and isinstance(got.arguments["cents"], int)
