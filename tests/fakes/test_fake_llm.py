"""Self-tests of the fake LLM server with plain httpx (no Django): run with
`pytest tests/fakes -p no:django`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.fake_llm import FakeLLMClient, FakeLLMServer, Reply, openai_error

REPO = Path(__file__).resolve().parents[2]


def sse_data(lines: Iterator[str]) -> list[str]:
    """Minimal WHATWG SSE reader (docs/protocols.md E.1): comments skipped, data lines joined."""
    events, buf = [], []
    for line in lines:
        if not line:
            if buf:
                events.append("\n".join(buf))
            buf = []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            if name == "data":
                buf.append(value[1:] if value.startswith(" ") else value)
    return events


def openai_stream(base: str, body: dict[str, Any]) -> list[Any]:
    """Decoded chunks, then "[DONE]" if it arrived."""
    with httpx.stream("POST", base + "/chat/completions", json={"stream": True, **body}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_data(resp.iter_lines())
    return [e if e == "[DONE]" else json.loads(e) for e in events]


def assemble(chunks: list[Any]) -> dict[str, Any]:
    """The client-side rules of A.6: concatenate text, assemble tool calls by index."""
    out: dict[str, Any] = {"content": "", "reasoning": "", "calls": {}, "finish": None, "usage": None}
    for c in chunks:
        if c == "[DONE]":
            continue
        if c.get("usage"):
            out["usage"] = c["usage"]
        for choice in c.get("choices") or []:
            delta = choice["delta"]
            out["content"] += delta.get("content") or ""
            out["reasoning"] += delta.get("reasoning_content") or delta.get("reasoning") or ""
            for pos, frag in enumerate(delta.get("tool_calls") or []):
                call = out["calls"].setdefault(frag.get("index", pos), {"id": None, "name": None, "args": ""})
                call["id"] = call["id"] or frag.get("id")
                call["name"] = call["name"] or frag["function"].get("name")
                call["args"] += frag["function"].get("arguments", "")
            out["finish"] = choice["finish_reason"] or out["finish"]
    return out


def ollama_lines(base: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", base + "/api/chat", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/x-ndjson"
        return [json.loads(line) for line in resp.iter_lines() if line]


MSG = [{"role": "user", "content": "hi"}]


def test_openai_non_streaming_default_reply_and_recording(fake_llm: FakeLLMServer) -> None:
    resp = httpx.post(
        fake_llm.openai_base + "/chat/completions",
        json={"model": "m", "messages": MSG},
        headers={"Authorization": "Bearer sk-test"},
    )
    data = resp.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "ok"}
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    rec = fake_llm.last_request("/v1/chat/completions")
    assert rec.json["messages"] == MSG and rec.headers["authorization"] == "Bearer sk-test" and rec.completed


def test_openai_stream_fragments_usage_and_done(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(content="Hello, world!", chunk_size=3), model="m")
    body = {"model": "m", "messages": MSG, "stream_options": {"include_usage": True}}
    chunks = openai_stream(fake_llm.openai_base, body)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:6]] == ["Hel", "lo,", " wo", "rld", "!"]
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["completion_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-2]) and chunks[-1] == "[DONE]"
    assert assemble(chunks)["finish"] == "stop"
    # Without include_usage there is no usage-only chunk.
    chunks = openai_stream(fake_llm.openai_base, {"model": "m", "messages": MSG})
    assert chunks[-1] == "[DONE]" and chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in chunks[-2]


def test_openai_parallel_tool_calls_reassemble(fake_llm: FakeLLMServer) -> None:
    args = [{"city": "Oslo", "units": "metric"}, {"q": "weather news"}]
    calls = [("get_weather", args[0], "call_a"), ("search", args[1])]
    fake_llm.script(Reply(tool_calls=calls, chunk_size=5, interleave_tools=True))
    chunks = openai_stream(fake_llm.openai_base, {"model": "m", "messages": MSG})
    frags = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-2]]
    function = {"name": "get_weather", "arguments": ""}
    assert frags[0] == {"index": 0, "id": "call_a", "type": "function", "function": function}
    assert frags[1]["index"] == 1 and frags[1]["function"]["name"] == "search"
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in frags[2:])
    got = assemble(chunks)
    assert got["finish"] == "tool_calls"
    assert [(c["name"], json.loads(c["args"])) for c in got["calls"].values()] == [(n, a) for n, a, *_ in calls]
    # Non-streaming: arguments are a JSON string (A-10), content null.
    fake_llm.script(Reply(tool_calls=[("search", args[1])]))
    resp = httpx.post(fake_llm.openai_base + "/chat/completions", json={"model": "m", "messages": MSG})
    msg = resp.json()["choices"][0]["message"]
    assert msg["content"] is None and json.loads(msg["tool_calls"][0]["function"]["arguments"]) == args[1]


def test_openai_quirks(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(tool_calls=[("f", {"a": 1})], omit_index=True, omit_finish=True, chunk_size=2))
    chunks = openai_stream(fake_llm.openai_base, {"model": "m", "messages": MSG})
    assert all("index" not in c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-1])
    assert assemble(chunks)["finish"] is None and chunks[-1] == "[DONE]"
    fake_llm.script(Reply(tool_calls=[("f", {"a": 1})], finish_reason="stop", args_before_name=True))
    chunks = openai_stream(fake_llm.openai_base, {"model": "m", "messages": MSG})
    assert "name" not in chunks[1]["choices"][0]["delta"]["tool_calls"][0]["function"]
    assert assemble(chunks)["finish"] == "stop" and assemble(chunks)["calls"][0]["name"] == "f"
    fake_llm.script(Reply(content="x", keepalive=True, multiline_data=True, line_ending="\r", content_null=True))
    chunks = openai_stream(fake_llm.openai_base, {"model": "m", "messages": MSG})
    assert chunks[0]["choices"][0]["delta"]["content"] is None and assemble(chunks)["content"] == "x"


@pytest.mark.parametrize(
    "style, reasoning, content",
    [
        ("reasoning_content", "Let me think", "Answer"),
        ("reasoning", "Let me think", "Answer"),
        ("think_tags", "", "<think>Let me think</think>Answer"),
        ("prefilled", "", "Let me think</think>Answer"),
    ],
)
def test_openai_thinking_styles(fake_llm: FakeLLMServer, style: str, reasoning: str, content: str) -> None:
    fake_llm.script(Reply(content="Answer", thinking="Let me think", thinking_style=style, chunk_size=4))
    chunks = openai_stream(fake_llm.openai_base, {"model": "m", "messages": MSG})
    got = assemble(chunks)
    assert (got["reasoning"], got["content"]) == (reasoning, content)
    if style == "think_tags":  # the tag is split across chunks, as in real streams
        assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["<thi", "nk>L"]


def test_ollama_stream_is_default_with_thinking_and_tools(fake_llm: FakeLLMServer) -> None:
    calls = [("get_weather", {"city": "Oslo"})]
    fake_llm.script(Reply(content="It is sunny", thinking="User asks", tool_calls=calls, chunk_size=4), model="qwen3")
    lines = ollama_lines(fake_llm.ollama_base, {"model": "qwen3:latest", "messages": MSG, "think": True})
    assert "".join(line["message"].get("thinking", "") for line in lines) == "User asks"
    assert "".join(line["message"]["content"] for line in lines) == "It is sunny"
    calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["function"]["arguments"] == {"city": "Oslo"}
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["eval_count"] > 0 and final["prompt_eval_count"] > 0 and final["total_duration"] > 0
    assert all(not line["done"] for line in lines[:-1])
    assert fake_llm.last_request("/api/chat").json["think"] is True


def test_ollama_non_streaming(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(content="hi", thinking="hmm", tool_calls=[("f", {"x": [1]}, "")]))
    data = httpx.post(fake_llm.ollama_base + "/api/chat", json={"model": "m", "messages": MSG, "stream": False}).json()
    assert data["done"] is True and data["message"]["content"] == "hi" and data["message"]["thinking"] == "hmm"
    assert data["message"]["tool_calls"] == [{"function": {"name": "f", "arguments": {"x": [1]}}}]  # old server: no id


def test_error_statuses(fake_llm: FakeLLMServer) -> None:
    overflow = openai_error("This model's maximum context length is 8192 tokens", code="context_length_exceeded")
    fake_llm.script([Reply(status=429, headers={"Retry-After": "2"}), Reply(status=400, error_body=overflow)])
    resp = httpx.post(fake_llm.openai_base + "/chat/completions", json={"model": "m", "messages": MSG, "stream": True})
    assert resp.status_code == 429 and resp.headers["retry-after"] == "2"
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
    resp = httpx.post(fake_llm.openai_base + "/chat/completions", json={"model": "m", "messages": MSG})
    assert resp.status_code == 400 and "maximum context length" in resp.json()["error"]["message"]
    fake_llm.script(Reply(status=404))
    resp = httpx.post(fake_llm.ollama_base + "/api/chat", json={"model": "nope", "messages": MSG})
    assert resp.status_code == 404 and resp.json() == {"error": 'model "nope" not found, try pulling it first'}


def test_mid_stream_errors_and_malformed(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(content="abcdef", chunk_size=1, mid_stream_error="overloaded", error_after=2))
    chunks = openai_stream(fake_llm.openai_base, {"model": "m", "messages": MSG})
    assert len(chunks) == 3 and chunks[-1]["error"]["message"] == "overloaded"
    fake_llm.script(Reply(content="abc", chunk_size=1, mid_stream_error="boom", error_after=1))
    lines = ollama_lines(fake_llm.ollama_base, {"model": "m", "messages": MSG})
    assert lines[-1] == {"error": "boom"} and len(lines) == 2
    fake_llm.script(Reply(content="abc", malformed=True))
    body = {"model": "m", "messages": MSG, "stream": True}
    with httpx.stream("POST", fake_llm.openai_base + "/chat/completions", json=body) as resp:
        events = sse_data(resp.iter_lines())
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[1])
    assert events[-1] == "[DONE]"


def test_truncation(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(content="abcdef", chunk_size=1, truncate_after=3))
    with pytest.raises(httpx.RemoteProtocolError):
        openai_stream(fake_llm.openai_base, {"model": "m", "messages": MSG})
    fake_llm.script(Reply(content="abcdef", chunk_size=1, truncate_after=3, truncate_mode="eof"))
    chunks = openai_stream(fake_llm.openai_base, {"model": "m", "messages": MSG})
    assert len(chunks) == 3 and "[DONE]" not in chunks
    fake_llm.script(Reply(content="abc", chunk_size=1, truncate_after=99, truncate_mode="eof"))
    lines = ollama_lines(fake_llm.ollama_base, {"model": "m", "messages": MSG})
    assert len(lines) == 3 and not any(line["done"] for line in lines)
    assert not fake_llm.requests[0].completed and fake_llm.disconnects == 0


def test_client_disconnect_is_counted(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(content="x" * 100, chunk_size=1, delay_s=0.02))
    body = {"model": "m", "messages": MSG, "stream": True}
    with httpx.stream("POST", fake_llm.openai_base + "/chat/completions", json=body) as resp:
        lines = resp.iter_lines()
        next(lines), next(lines), next(lines)
    assert fake_llm.wait_disconnects(1)
    rec = fake_llm.last_request()
    assert rec.disconnected and not rec.completed
    fake_llm.script(Reply(hang=True))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(fake_llm.ollama_base + "/api/chat", json={"model": "m", "messages": MSG}, timeout=0.2)
    assert fake_llm.wait_disconnects(2)


def test_queues_are_per_model_then_default(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(["first", "second"], model="a")
    fake_llm.script("any")

    def ask(model: str) -> str:
        body = {"model": model, "messages": MSG}
        resp = httpx.post(fake_llm.openai_base + "/chat/completions", json=body)
        return resp.json()["choices"][0]["message"]["content"]

    assert [ask("b"), ask("a"), ask("a"), ask("a")] == ["any", "first", "second", "ok"]


def test_model_discovery(fake_llm: FakeLLMServer) -> None:
    fake_llm.set_model("llava", capabilities=["completion", "vision"], context_length=4096, family="llama")
    models = httpx.get(fake_llm.openai_base + "/models").json()
    assert models["object"] == "list" and {"fake-model", "llava"} <= {m["id"] for m in models["data"]}
    tags = httpx.get(fake_llm.ollama_base + "/api/tags").json()
    assert {m["name"] for m in tags["models"]} == {"fake-model", "llava"}
    show = httpx.post(fake_llm.ollama_base + "/api/show", json={"model": "llava"}).json()
    assert show["capabilities"] == ["completion", "vision"] and show["model_info"]["llama.context_length"] == 4096
    resp = httpx.post(fake_llm.ollama_base + "/api/chat", json={"model": "llava", "messages": MSG, "think": True})
    assert resp.status_code == 400 and resp.json() == {"error": '"llava" does not support thinking'}  # B-6


@pytest.fixture
def fake_process() -> Iterator[FakeLLMClient]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_llm", "--port", "0", "--default-chunks", "5"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        with FakeLLMClient(url) as client:
            yield client
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_process_mode_http_control(fake_process: FakeLLMClient) -> None:
    fake_process.script([Reply(content="scripted", tool_calls=[("f", {"a": 1}, "call_1")])], model="m")
    chunks = openai_stream(fake_process.openai_base, {"model": "m", "messages": MSG})
    got = assemble(chunks)
    assert got["content"] == "scripted" and got["calls"][0]["id"] == "call_1"
    default = assemble(openai_stream(fake_process.openai_base, {"model": "m", "messages": MSG}))
    assert default["content"] == "ok " * 5
    assert len(fake_process.requests) == 2 and fake_process.last_request().json["stream"] is True
    fake_process.reset()
    assert fake_process.requests == [] and fake_process.disconnects == 0
    with pytest.raises(httpx.HTTPStatusError):
        fake_process.script([{"contnet": "typo"}])
