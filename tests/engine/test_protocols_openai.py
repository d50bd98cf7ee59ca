"""OpenAI chat-completions adapter against hand-written wire payloads (docs/protocols.md A)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from inference.engine.errors import ModelTimeout, ModelUnavailable
from inference.engine.protocols import get_adapter
from inference.engine.protocols.base import TRUNCATED
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
from tests.engine.upstream import Handler, Server, streamed

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 16).decode()
MODEL = ModelConfig(
    model_id="m", api_protocol="openai", api_base="http://llm.test/v1/", model_name="qwen3", api_key="sk-fake"
)


def sse(*chunks: Any, done: bool = True, split: int | None = None) -> Handler:
    """An SSE answer: each chunk a ``data:`` event (dicts are JSON-encoded), optionally cut into
    ``split``-byte pieces to exercise chunk boundaries."""
    text = "".join(f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks)
    raw = (text + ("data: [DONE]\n\n" if done else "")).encode()
    return streamed(raw, "text/event-stream", split)


def delta(finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": finish}]}


def frag(index: int | None = None, id: str | None = None, name: str | None = None, args: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"function": {}}
    if index is not None:
        out["index"] = index
    if id is not None:
        out["id"], out["type"] = id, "function"
    if name is not None:
        out["function"]["name"] = name
    if args is not None:
        out["function"]["arguments"] = args
    return out


async def collect(model: ModelConfig = MODEL, messages: tuple[Message, ...] = (Message("user", "hi"),), **kw: Any) -> list[Any]:
    return [e async for e in get_adapter(model).stream(messages, **kw)]


def calls(events: list[Any]) -> list[ToolCall]:
    return [e.call for e in events if isinstance(e, ToolCallDelta)]


def text(events: list[Any], kind: type = TextDelta) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


USAGE = {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}


# ---- streaming: text, usage, request shape --------------------------------------------------


async def test_it_streams_text_then_usage_then_one_finish(server: Server) -> None:
    server.handler = sse(
        delta(role="assistant", content=None),  # llama.cpp opens with content null
        delta(content="Hello"),
        delta(content=" world"),
        delta("stop"),
        {"choices": [], "usage": USAGE, "timings": {"predicted_ms": 1}},
        split=7,
    )
    events = await collect(options={"temperature": 0.2, "think_prefilled": False, "reasoning_field": None})
    assert events == [TextDelta("Hello"), TextDelta(" world"), UsageDelta(Usage(50, 20, 70)), Finish("stop")]
    request = server.requests[0]
    assert str(request.url) == "http://llm.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-fake"
    assert server.body == {
        "temperature": 0.2,
        "max_tokens": 4096,  # the model's max_output_tokens (default)
        "model": "qwen3",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_no_authorization_header_without_a_key(server: Server) -> None:
    server.handler = sse(delta("stop", content="ok"))
    await collect(ModelConfig(model_id="m", api_protocol="openai", api_base="http://llm.test/v1", model_name="x"))
    assert "authorization" not in server.requests[0].headers


async def test_a_cookie_the_model_server_sets_is_not_sent_back(server: Server) -> None:
    """The pooled client serves every user of a model: a cookie one answer sets would ride along
    on everyone's later calls to that server."""
    server.handler = lambda request: httpx.Response(
        200, headers={"content-type": "text/event-stream", "set-cookie": "sid=alice; Path=/"},
        content=b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
    )
    await collect()
    await collect()
    assert len(server.requests) == 2 and "cookie" not in server.requests[1].headers


@pytest.mark.parametrize(
    "usage_chunk",
    [
        {"choices": [], "usage": USAGE},
        {"choices": None, "usage": USAGE},
        {"usage": USAGE},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": None}], "usage": USAGE},
    ],
)
async def test_usage_chunk_shapes(server: Server, usage_chunk: dict[str, Any]) -> None:
    server.handler = sse(delta(content="x"), delta("length"), usage_chunk)
    events = await collect()
    assert events[-2:] == [UsageDelta(Usage(50, 20, 70)), Finish("length")]


async def test_without_usage_no_usage_event(server: Server) -> None:
    server.handler = sse(delta("stop", content="x"))
    assert await collect() == [TextDelta("x"), Finish("stop")]


@pytest.mark.parametrize(
    ("think", "options", "expected"),
    [
        (None, {}, {}),
        (False, {}, {"chat_template_kwargs": {"enable_thinking": False}}),
        (True, {"chat_template_kwargs": {"foo": 1}}, {"chat_template_kwargs": {"foo": 1, "enable_thinking": True}}),
        ("high", {}, {"reasoning_effort": "high"}),
        ("high", {"reasoning_effort": "low"}, {"reasoning_effort": "low"}),  # explicit options win
    ],
)
async def test_think_mapping(server: Server, think: Any, options: dict[str, Any], expected: dict[str, Any]) -> None:
    server.handler = sse(delta("stop", content="x"))
    await collect(think=think, options=options)
    sent = {k: v for k, v in server.body.items() if k in ("chat_template_kwargs", "reasoning_effort")}
    assert sent == expected


# ---- streaming: tool calls ------------------------------------------------------------------


async def test_a_fragmented_tool_call_is_assembled(server: Server) -> None:
    # docs/protocols.md A.6's sequence
    server.handler = sse(
        delta(role="assistant", content=""),
        delta(content="Let me check"),
        delta(tool_calls=[frag(0, "call_1", "get_weather", "")]),
        delta(tool_calls=[frag(0, args='{"ci')]),
        delta(tool_calls=[frag(0, args='ty":"Oslo"}')]),
        delta("tool_calls"),
        {"choices": [], "usage": USAGE},
    )
    events = await collect(tools=[{"name": "get_weather", "description": "d", "parameters": {"type": "object"}}])
    assert events == [
        TextDelta("Let me check"),
        ToolCallDelta(ToolCall(id="call_1", name="get_weather", arguments={"city": "Oslo"})),
        UsageDelta(Usage(50, 20, 70)),
        Finish("tool_calls"),
    ]
    assert server.body["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": {"type": "object"}}}
    ]


async def test_interleaved_parallel_calls_are_kept_apart(server: Server) -> None:
    server.handler = sse(
        delta(tool_calls=[frag(0, "call_a", "get_weather", '{"city":'), frag(1, "call_b", "get_time", '{"tz":')]),
        delta(tool_calls=[frag(1, args='"UTC"}')]),
        delta(tool_calls=[frag(0, args='"Oslo"}')]),
        delta("tool_calls"),
    )
    assert calls(await collect()) == [
        ToolCall("call_a", "get_weather", {"city": "Oslo"}),
        ToolCall("call_b", "get_time", {"tz": "UTC"}),
    ]


async def test_missing_index_falls_back_to_ids_and_continuations(server: Server) -> None:
    # Gemini-style whole calls without index, then an anonymous continuation fragment
    server.handler = sse(
        delta(tool_calls=[frag(id="c1", name="a", args='{"x": 1}')]),
        delta(tool_calls=[frag(id="c2", name="b", args='{"y"')]),
        delta(tool_calls=[frag(args=": 2}")]),
        delta("tool_calls"),
    )
    assert calls(await collect()) == [ToolCall("c1", "a", {"x": 1}), ToolCall("c2", "b", {"y": 2})]


async def test_an_index_reused_with_a_new_id_is_a_new_call(server: Server) -> None:
    server.handler = sse(
        delta(tool_calls=[frag(0, "c1", "a", "{}")]),
        delta(tool_calls=[frag(0, "c2", "b", "{}")]),
        delta("tool_calls"),
    )
    assert [c.id for c in calls(await collect())] == ["c1", "c2"]


async def test_arguments_before_the_name(server: Server) -> None:
    #
    server.handler = sse(
        delta(tool_calls=[frag(0, args='{"q": ')]),
        delta(tool_calls=[frag(0, args='"x"}')]),
        delta(tool_calls=[frag(0, "call_9", "search")]),
        delta("tool_calls"),
    )
    assert calls(await collect()) == [ToolCall("call_9", "search", {"q": "x"})]


async def test_a_name_repeated_on_every_fragment_is_not_appended(server: Server) -> None:
    server.handler = sse(
        delta(tool_calls=[frag(0, "c", "search", '{"q":')]),
        delta(tool_calls=[frag(0, "c", "search", '"x"}')]),
        delta("tool_calls"),
    )
    assert calls(await collect()) == [ToolCall("c", "search", {"q": "x"})]


@pytest.mark.parametrize("finish", ["stop", None])
async def test_calls_decide_the_finish_reason_not_the_server(server: Server, finish: str | None) -> None:
    # A-3 finish_reason "stop" with calls; A-4 no finish chunk at all
    chunks = [delta(tool_calls=[frag(0, "c", "f", "{}")])] + ([delta(finish)] if finish else [])
    server.handler = sse(*chunks)
    events = await collect()
    assert events[-1] == Finish("tool_calls")


async def test_missing_and_duplicate_ids_are_synthesised(server: Server) -> None:
    #
    server.handler = sse(
        delta(tool_calls=[frag(0, name="a", args="{}"), frag(1, "", "b", "{}"), frag(2, "dup", "c", "{}")]),
        delta(tool_calls=[frag(3, "dup", "d", "{}")]),
        delta("tool_calls"),
    )
    ids = [c.id for c in calls(await collect())]
    assert ids[2] == "dup"
    assert len(set(ids)) == 4
    assert all(i.startswith("call_") for i in ids[:2] + ids[3:])


async def test_empty_and_invalid_arguments_do_not_crash(server: Server) -> None:
    server.handler = sse(
        delta(tool_calls=[frag(0, "c0", "none", ""), frag(1, "c1", "bad", '{"x": '), frag(2, "c2", "list", "[1]")]),
        delta("tool_calls"),
    )
    none, bad, listed = calls(await collect())
    assert none == ToolCall("c0", "none", {})
    assert bad.arguments == {} and bad.arguments_error.startswith("arguments were not valid JSON")
    assert listed.arguments == {} and listed.arguments_error == "arguments must be a JSON object, got list"


# ---- streaming: reasoning -------------------------------------------------------------------


async def test_reasoning_from_either_field(server: Server) -> None:
    #
    server.handler = sse(delta(reasoning_content="a"), delta(reasoning="b"), delta("stop", content="c"))
    events = await collect()
    assert events == [ReasoningDelta("a"), ReasoningDelta("b"), TextDelta("c"), Finish("stop")]


async def test_think_tags_split_across_chunks(server: Server) -> None:
    server.handler = sse(
        delta(content="<thi"), delta(content="nk>pla"), delta(content="n</th"), delta(content="ink>Answer"), delta("stop")
    )
    events = await collect()
    assert (text(events, ReasoningDelta), text(events)) == ("plan", "Answer")


async def test_prefilled_think_starts_in_reasoning_and_is_not_sent(server: Server) -> None:
    model = ModelConfig(
        model_id="m", api_protocol="openai", api_base="http://llm.test/v1", model_name="r1", options={"think_prefilled": True}
    )
    server.handler = sse(delta(content="hmm"), delta(content="</think>\n\nYes"), delta("stop"))
    events = await collect(model, options=dict(model.options))
    assert (text(events, ReasoningDelta), text(events)) == ("hmm", "Yes")
    assert "think_prefilled" not in server.body


async def test_prefill_is_ignored_when_the_server_parses_reasoning(server: Server) -> None:
    model = ModelConfig(
        model_id="m", api_protocol="openai", api_base="http://llm.test/v1", model_name="r1", options={"think_prefilled": True}
    )
    server.handler = sse(delta(reasoning_content="hmm"), delta(content="Yes"), delta("stop"))
    events = await collect(model)
    assert (text(events, ReasoningDelta), text(events)) == ("hmm", "Yes")


# ---- streaming: failures --------------------------------------------------------------------


async def test_eof_without_done_and_without_finish_is_truncated(server: Server) -> None:
    server.handler = sse(delta(content="Hel"), done=False)
    with pytest.raises(ModelUnavailable, match=TRUNCATED) as exc:
        await collect()
    assert exc.value.retryable


async def test_eof_without_done_after_a_finish_is_accepted(server: Server) -> None:
    server.handler = sse(delta(content="Hi"), delta("stop"), done=False)
    assert await collect() == [TextDelta("Hi"), Finish("stop")]


async def test_an_error_chunk_inside_a_200_stream(server: Server) -> None:
    server.handler = sse(delta(content="x"), {"error": {"message": "overloaded", "code": 500}})
    with pytest.raises(ModelUnavailable, match="overloaded") as exc:
        await collect()
    assert exc.value.detail == {"upstream_status": None, "upstream_message": "overloaded"}


async def test_malformed_json_in_the_stream(server: Server) -> None:
    server.handler = sse("{not json")
    with pytest.raises(ModelUnavailable, match="malformed JSON"):
        await collect()


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            400,
            {"error": {"message": "maximum context length is 8192", "type": "invalid_request_error", "code": None}},
            "maximum context length is 8192",
        ),
        (400, {"object": "error", "message": "flat vLLM error", "type": "BadRequestError", "code": 400}, "flat vLLM error"),
        (404, {"error": "The model `nope` does not exist."}, "The model `nope` does not exist."),
        (503, "upstream unavailable", "upstream unavailable"),
    ],
)
async def test_http_errors_carry_the_upstream_status_and_message(server: Server, status: int, body: Any, message: str) -> None:
    server.handler = lambda r: httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)
    with pytest.raises(ModelUnavailable) as exc:
        await collect()
    assert exc.value.status == 502
    assert exc.value.detail == {"upstream_status": status, "upstream_message": message}
    assert exc.value.retryable == (status >= 500)
    with pytest.raises(ModelUnavailable):  # the non-streaming path maps them the same way
        await get_adapter(MODEL).complete([Message("user", "hi")])


async def test_refused_connection_and_timeout(server: Server) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    server.handler = refuse
    with pytest.raises(ModelUnavailable, match="Connection refused"):
        await collect()

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    server.handler = slow
    with pytest.raises(ModelTimeout) as exc:
        await collect()
    assert exc.value.status == 504


async def test_a_connection_dropped_mid_stream_is_model_unavailable(server: Server) -> None:
    async def broken():
        yield b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
        raise httpx.RemoteProtocolError("peer closed connection")

    server.handler = lambda r: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=broken())
    with pytest.raises(ModelUnavailable, match="peer closed"):
        await collect()


async def test_a_server_that_ignores_stream_true_still_works(server: Server) -> None:
    server.handler = lambda r: httpx.Response(
        200, json={"choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "whole"}}]}
    )
    assert await collect() == [TextDelta("whole"), UsageDelta(Usage()), Finish("stop")]


# ---- non-streaming --------------------------------------------------------------------------


async def test_complete_returns_a_round_result(server: Server) -> None:
    server.handler = lambda r: httpx.Response(
        200,
        json={
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "reasoning": "think first",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                            }
                        ],
                    },
                }
            ],
            "usage": USAGE,
        },
    )
    result = await get_adapter(MODEL).complete([Message("user", "hi")], options={"stream_options": {"include_usage": True}})
    assert result.content == "" and result.thinking == "think first"
    assert result.tool_calls == (ToolCall("call_1", "get_weather", {"city": "Oslo"}),)
    assert result.usage == Usage(50, 20, 70) and result.finish_reason == "tool_calls"
    assert server.body["stream"] is False and "stream_options" not in server.body


async def test_complete_treats_text_before_a_lone_closing_tag_as_reasoning(server: Server) -> None:
    server.handler = lambda r: httpx.Response(
        200, json={"choices": [{"finish_reason": "stop", "message": {"content": "hmm\n</think>\n\nYes"}}]}
    )
    result = await get_adapter(MODEL).complete([Message("user", "hi")])
    assert (result.thinking, result.content) == ("hmm\n", "Yes")


async def test_list_models(server: Server) -> None:
    server.handler = lambda r: httpx.Response(200, json={"object": "list", "data": [{"id": "qwen3", "object": "model"}]})
    assert await get_adapter(MODEL).list_models() == [{"id": "qwen3", "object": "model"}]
    assert str(server.requests[0].url) == "http://llm.test/v1/models"


# ---- history replay -------------------------------------------------------------------------


async def test_history_replay(server: Server) -> None:
    server.handler = sse(delta("stop", content="ok"))
    model = ModelConfig(
        model_id="m",
        api_protocol="openai",
        api_base="http://llm.test/v1",
        model_name="x",
        options={"reasoning_field": "reasoning_content"},
    )
    history = (
        Message("system", "sys"),
        Message("user", "look", images=(f"data:image/jpeg;base64,{PNG}", JPEG), audio=(AudioInput("UklGRg==", "wav"),)),
        Message(
            "assistant",
            "",
            thinking="need tools",
            tool_calls=(
                ToolCall("c1", "snap", {"zoom": 2}),
                ToolCall("c2", "now", {}),
            ),
        ),
        Message(
            "tool", [{"type": "text", "text": "here"}, {"type": "image", "data": PNG, "mimeType": "image/png"}], tool_call_id="c1"
        ),
        Message("tool", "12:00", tool_call_id="c2"),
        Message("assistant", "done"),
    )
    await collect(model, history, options=dict(model.options))
    assert server.body["messages"] == [
        {"role": "system", "content": "sys"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                # the MIME type comes from the bytes, not the declared data URI
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{JPEG}"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "need tools",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "snap", "arguments": '{"zoom": 2}'}},
                {"id": "c2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "c1",
            "content": "here\n[1 image(s) returned by this tool; attached in the next user message]",
        },
        {"role": "tool", "tool_call_id": "c2", "content": "12:00"},
        # after every tool answer, before the next assistant turn
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Images returned by the tool calls above:"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {"role": "assistant", "content": "done"},
    ]
    assert "reasoning_field" not in server.body


async def test_tool_arguments_sent_as_an_object_keep_integers_beyond_64_bits(server: Server) -> None:
    big = 2**70 + 1  # a fast JSON reader would make it a float
    whole = {"index": 0, "id": "c1", "type": "function", "function": {"name": "pay", "arguments": {"cents": big}}}
    server.handler = sse(delta(tool_calls=[whole]), delta("tool_calls"))
    (call,) = calls(await collect())
    assert call.arguments == {"cents": big} and isinstance(call.arguments["cents"], int)


async def test_chunks_only_the_standard_library_reads_still_parse(server: Server) -> None:
    # NaN is not JSON, and a lone surrogate escape is not Unicode; both were read before
    server.handler = sse('{"choices": [{"index": 0, "delta": {"content": "a\\ud800"}, "logprobs": NaN}]}', delta("stop"))
    assert text(await collect()) == "a\ud800"
