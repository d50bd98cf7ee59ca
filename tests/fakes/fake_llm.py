"""A fake LLM model server speaking the OpenAI chat-completions and Ollama native wire
protocols (docs/protocols.md sections A, B and E), including their quirks.

Tests script replies per model, then assert on the recorded requests. Two ways to run it,
sharing one implementation (:class:`FakeLLM`):

* in-process: ``with FakeLLMServer() as llm: llm.script([Reply(content="hi")])``
* as a process: ``python -m tests.fakes.fake_llm --port N`` controlled over HTTP
  (``/_fake/script``, ``/_fake/requests``, ``/_fake/reset``, ``/_fake/models``) or through
  :class:`FakeLLMClient`, which has the same control methods.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

__all__ = [
    "FakeLLM",
    "FakeLLMClient",
    "FakeLLMServer",
    "RecordedRequest",
    "Reply",
    "ollama_error",
    "openai_error",
]

THINKING_STYLES = ("reasoning_content", "reasoning", "think_tags", "prefilled")


@dataclass
class Reply:
    """One scripted model answer. Quirk fields name the docs/protocols.md gotcha they reproduce."""

    content: str = ""
    thinking: str = ""
    # reasoning_content | reasoning (vLLM, Ollama /v1) -> separate field; Ollama native always
    # uses message.thinking for these two. think_tags / prefilled -> inline in content (A.8).
    thinking_style: str = "reasoning_content"
    # (name, arguments) or (name, arguments, id); several -> parallel calls. id "" reproduces
    # empty ids on OpenAI and old servers without id/index on Ollama (B.3).
    tool_calls: list[tuple[Any, ...]] = field(default_factory=list)
    chunk_size: int = 16  # characters per content/thinking/arguments fragment
    delay_s: float = 0.0  # between chunks
    first_delay_s: float = 0.0  # before the status line
    status: int = 200
    error_body: Any = None  # dict/list -> JSON; str -> verbatim text; None -> the protocol's real shape
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers, e.g. Retry-After
    mid_stream_error: str | None = None  # error chunk/line after `error_after` chunks, then EOF
    error_after: int = 1
    truncate_after: int | None = None  # chunks sent before the stream ends without [DONE] / done line
    truncate_mode: str = "cut"  # "cut": socket closed mid-body; "eof": clean end of body
    malformed: bool = False  # a non-JSON chunk after the first one (non-streaming: the whole body)
    usage: dict[str, int] | None = None  # prompt_tokens/completion_tokens; default from lengths
    finish_reason: str | None = None  # override, e.g. "stop" despite tool calls; Ollama done_reason
    omit_finish: bool = False  # no finish_reason chunk; Ollama: no done_reason
    omit_index: bool = False  # tool-call deltas without `index`
    args_before_name: bool = False  # argument pieces stream before function.name
    repeat_ids: bool = False  # id/type/name repeated on every tool-call fragment (A.6 rule 3)
    interleave_tools: bool = False  # fragments of parallel calls interleave (A.6 rule 5)
    usage_choices: str = "empty"  # usage-only chunk's choices: "empty" [], "null", "missing"
    content_null: bool = False  # first delta is {"role":"assistant","content":null}
    keepalive: bool = False  # ": keep-alive" comment before every SSE event (E-3)
    line_ending: str = "\n"  # SSE line ending: "\n", "\r\n" or "\r" (E-2)
    multiline_data: bool = False  # each JSON chunk spread over several data: lines (E-4)
    hang: bool = False  # never answer; waits until the client goes away

    def __post_init__(self) -> None:
        if self.thinking_style not in THINKING_STYLES:
            raise ValueError(f"thinking_style must be one of {THINKING_STYLES}")
        self.tool_calls = [tuple(c) for c in self.tool_calls]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:  # typos in scripts must fail loudly, not silently use defaults
            raise ValueError(f"unknown Reply fields: {sorted(unknown)}")
        calls = [
            (c["name"], c.get("arguments", {}), *([c["id"]] if "id" in c else [])) if isinstance(c, dict) else c
            for c in data.get("tool_calls", [])
        ]
        return cls(**{**data, "tool_calls": calls})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RecordedRequest:
    path: str
    method: str
    headers: dict[str, str]  # lower-cased names
    json: Any  # parsed body, None when empty or not JSON
    completed: bool = False  # the whole response reached the socket
    disconnected: bool = False  # the client went away before the response was complete
    client_port: int | None = None  # the client's TCP port: which connection carried the request

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecordedRequest:
        return cls(**data)


def openai_error(message: str, type: str = "invalid_request_error", code: Any = None, param: Any = None) -> dict:
    """An OpenAI-shaped error body (A.10)."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def ollama_error(message: str) -> dict:
    """An Ollama-shaped error body: the error is a string (B.5)."""
    return {"error": message}


_OPENAI_ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def _dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(obj, separators=None if indent else (",", ":"), indent=indent, ensure_ascii=False)


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _rfc3339_ns() -> str:
    # Ollama's created_at has nanoseconds (9 digits), which trips %f parsers (B-9).
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def _split_thinking(r: Reply, native_field: str) -> tuple[str | None, str]:
    """(separate reasoning field or None, content text with any inline reasoning)."""
    if not r.thinking:
        return None, r.content
    if r.thinking_style == "think_tags":
        return None, f"<think>{r.thinking}</think>{r.content}"
    if r.thinking_style == "prefilled":
        return None, f"{r.thinking}</think>{r.content}"
    return native_field or r.thinking_style, r.content


@dataclass
class _Plan:
    """What to put on the wire for one request, decided before the first byte."""

    status: int
    headers: list[tuple[bytes, bytes]]
    streaming: bool
    frames: list[bytes] = field(default_factory=list)
    tail: Callable[[], bytes] = lambda: b""  # last body bytes (or the whole non-streaming body)
    cut: bool = False
    delay: float = 0.0
    first_delay: float = 0.0
    hang: bool = False


def _headers(content_type: str, extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
    pairs = [(b"content-type", content_type.encode())]
    if content_type.startswith("text/event-stream"):
        pairs.append((b"cache-control", b"no-cache"))
    return pairs + [(k.lower().encode(), str(v).encode()) for k, v in extra.items()]


def _whole(r: Reply, content_type: str, body: Callable[[], bytes], status: int = 200) -> _Plan:
    """A non-streaming answer; `body` is built at send time (Ollama reports real durations)."""
    return _Plan(status, _headers(content_type, r.headers), False, tail=body, first_delay=r.first_delay_s)


class _Exchange:
    """ASGI response that plays a plan while watching for the client going away, so a test
    can assert that a disconnect mid-stream really reached the upstream server."""

    def __init__(self, fake: FakeLLM, rec: RecordedRequest, plan: _Plan) -> None:
        self.fake, self.rec, self.plan, self.generation = fake, rec, plan, fake._generation

    async def __call__(self, scope: Any, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
        producer = asyncio.ensure_future(self._play(send))
        watcher = asyncio.ensure_future(self._wait_disconnect(receive))
        done, _ = await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if producer in done:
            watcher.cancel()
            producer.result()
            return
        producer.cancel()
        self.rec.disconnected = True
        if self.generation == self.fake._generation:  # a stale stream must not count after reset()
            self.fake._disconnects += 1

    @staticmethod
    async def _wait_disconnect(receive: Callable[[], Awaitable[dict]]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _play(self, send: Callable) -> None:
        p = self.plan
        if p.hang:
            await asyncio.get_running_loop().create_future()
        if p.first_delay:
            await asyncio.sleep(p.first_delay)
        if not p.streaming:
            body = p.tail()
            headers = [*p.headers, (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": p.status, "headers": headers})
            self.rec.completed = True  # set before the last send: the client may look right after reading it
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send({"type": "http.response.start", "status": p.status, "headers": p.headers})
        for i, frame in enumerate(p.frames):
            if i and p.delay:
                await asyncio.sleep(p.delay)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        if p.cut:
            return  # uvicorn closes the socket mid-body: the client sees a broken chunked read
        if p.delay and p.frames:
            await asyncio.sleep(p.delay)
        self.rec.completed = True
        await send({"type": "http.response.body", "body": p.tail(), "more_body": False})


class _Controls:
    """Inspection helpers shared by the in-process server and the HTTP client."""

    requests: list[RecordedRequest]
    disconnects: int

    def last_request(self, path: str | None = None) -> RecordedRequest | None:
        for rec in reversed(self.requests):
            if path is None or rec.path == path:
                return rec
        return None

    def wait_disconnects(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Disconnects are noticed asynchronously; poll until `count` were seen."""
        deadline = time.monotonic() + timeout
        while self.disconnects < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


class FakeLLM(_Controls):
    """Scripted replies, request log and the Starlette app serving both protocols."""

    def __init__(self, default_chunks: int = 1, default_delay: float = 0.0) -> None:
        if default_chunks > 1:  # "ok " x N with chunk_size 3 -> exactly N content chunks
            self.default_reply = Reply(content="ok " * default_chunks, chunk_size=3, delay_s=default_delay)
        else:
            self.default_reply = Reply(content="ok", delay_s=default_delay)
        self._generation = 0
        self.reset()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai_chat, methods=["POST"]),
                Route("/v1/models", self._openai_models, methods=["GET"]),
                Route("/api/chat", self._ollama_chat, methods=["POST"]),
                Route("/api/tags", self._ollama_tags, methods=["GET"]),
                Route("/api/show", self._ollama_show, methods=["POST"]),
                Route("/_fake/script", self._ctl_script, methods=["POST"]),
                Route("/_fake/requests", self._ctl_requests, methods=["GET"]),
                Route("/_fake/reset", self._ctl_reset, methods=["POST"]),
                Route("/_fake/models", self._ctl_models, methods=["POST"]),
                Route("/{path:path}", self._not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            ]
        )

    # -- control ---------------------------------------------------------------------

    def script(self, replies: Reply | str | Iterable[Reply | str], model: str | None = None) -> None:
        """Queue replies (FIFO) for `model`, or for any model when None. A str is a content reply."""
        if isinstance(replies, (Reply, str)):
            replies = [replies]
        queue = self._queues.setdefault(model, deque())
        queue.extend(Reply(content=r) if isinstance(r, str) else r for r in replies)

    def reset(self) -> None:
        self._generation += 1
        self._queues: dict[str | None, deque[Reply]] = {}
        self.requests: list[RecordedRequest] = []
        self._disconnects = 0
        self.models: dict[str, dict[str, Any]] = {}
        self.set_model("fake-model")

    def set_model(
        self, name: str, capabilities: list[str] | None = None, context_length: int = 32768, family: str = "fake",
        openai_listing: str = "openai", num_ctx: int | None = None,
    ) -> None:
        """Register a model for /v1/models, /api/tags and /api/show.

        ``openai_listing`` is the shape of its /v1/models entry: "openai" (id, object, created,
        owned_by only), "llamacpp" (``meta.n_ctx``, ``architecture.input_modalities`` and the
        Ollama-style ``models`` list with ``capabilities``) or "vllm" (``max_model_len``).
        ``num_ctx`` puts a ``num_ctx`` line in /api/show's ``parameters`` (a modelfile setting).
        """
        caps = capabilities if capabilities is not None else ["completion", "tools", "thinking", "vision"]
        self.models[name] = {"capabilities": caps, "context_length": context_length, "family": family,
                             "openai_listing": openai_listing, "num_ctx": num_ctx}

    @property
    def disconnects(self) -> int:
        return self._disconnects

    def _next_reply(self, model: str | None) -> Reply:
        names = [model]
        if model and ":" not in model:
            names.append(model + ":latest")  # Ollama's default tag
        elif model and model.endswith(":latest"):
            names.append(model[: -len(":latest")])
        for name in [*names, None]:
            queue = self._queues.get(name)
            if queue:
                return queue.popleft()
        return self.default_reply

    async def _record(self, request: Request) -> RecordedRequest:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        rec = RecordedRequest(request.url.path, request.method, headers, body,
                              client_port=request.client.port if request.client else None)
        self.requests.append(rec)
        return rec

    # -- shared reply plumbing ---------------------------------------------------------

    @staticmethod
    def _calls(r: Reply) -> list[tuple[str, dict, str]]:
        return [(c[0], c[1], c[2] if len(c) > 2 else f"call_{uuid.uuid4().hex[:24]}") for c in r.tool_calls]

    @staticmethod
    def _usage(r: Reply, body: dict, text: str, calls: list) -> dict[str, int]:
        if r.usage is not None:
            usage = dict(r.usage)
        else:  # ~4 characters per token, never zero
            out_chars = len(text) + len(r.thinking) + sum(len(_dumps(a)) + len(n) for n, a, _ in calls)
            usage = {
                "prompt_tokens": max(1, len(_dumps(body.get("messages", []))) // 4),
                "completion_tokens": max(1, out_chars // 4),
            }
        usage.setdefault("total_tokens", usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
        return usage

    def _stream_plan(
        self, r: Reply, content_type: str, frames: list[bytes], tail: Callable[[], bytes], error: bytes, bad: bytes
    ) -> _Plan:
        if r.malformed:
            frames.insert(min(1, len(frames)), bad)
        if r.mid_stream_error is not None:
            frames, tail = [*frames[: r.error_after], error], (lambda: b"")
        cut = False
        if r.truncate_after is not None:
            frames, tail, cut = frames[: r.truncate_after], (lambda: b""), r.truncate_mode == "cut"
        return _Plan(200, _headers(content_type, r.headers), True, frames, tail, cut, r.delay_s, r.first_delay_s)

    def _plan(self, r: Reply, streaming: bool, error_body: Callable[[], Any]) -> _Plan | None:
        """Plans shared by both protocols (hang, HTTP errors, malformed body); None otherwise."""
        if r.hang:
            return _Plan(200, [], streaming, hang=True)
        if r.status >= 400:
            body = r.error_body if r.error_body is not None else error_body()
            if isinstance(body, str):
                raw, ctype = body.encode(), "text/plain; charset=utf-8"
            else:
                raw, ctype = _dumps(body).encode(), "application/json"
            return _whole(r, ctype, lambda: raw, r.status)
        if r.malformed and not streaming:
            return _whole(r, "application/json", lambda: b'{"id": "chatcmpl-')
        return None

    # -- OpenAI (section A) ------------------------------------------------------------

    async def _openai_chat(self, request: Request) -> _Exchange | JSONResponse:
        rec = await self._record(request)
        body = rec.json
        if not isinstance(body, dict):
            return JSONResponse(openai_error("We could not parse the JSON body of your request."), status_code=400)
        r = self._next_reply(body.get("model"))
        streaming = bool(body.get("stream", False))

        def default_error() -> dict:
            kind, code = _OPENAI_ERROR_KINDS.get(r.status, ("server_error", None))
            return openai_error(f"fake error (HTTP {r.status})", kind, code)

        plan = self._plan(r, streaming, default_error)
        if plan is None:
            plan = self._openai_stream(r, body) if streaming else self._openai_complete(r, body)
        return _Exchange(self, rec, plan)

    def _openai_complete(self, r: Reply, body: dict) -> _Plan:
        reasoning_field, text = _split_thinking(r, "")
        calls = self._calls(r)
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
        if reasoning_field:
            message[reasoning_field] = r.thinking
        if calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": n, "arguments": _dumps(a)}} for n, a, cid in calls
            ]
        finish = None if r.omit_finish else r.finish_reason or ("tool_calls" if calls else "stop")
        payload = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": self._usage(r, body, text, calls),
        }
        raw = _dumps(payload).encode()
        return _whole(r, "application/json", lambda: raw)

    @staticmethod
    def _tool_fragments(r: Reply, calls: list[tuple[str, dict, str]]) -> list[dict]:
        per_call = []
        for i, (name, args, cid) in enumerate(calls):
            ident = {"index": i, "id": cid, "type": "function"}
            pieces = _pieces(_dumps(args), r.chunk_size)
            if r.repeat_ids:
                frags = [{**ident, "function": {"name": name, "arguments": p}} for p in ["", *pieces]]
            elif r.args_before_name:
                frags = [{**ident, "function": {"arguments": p}} for p in pieces[:1]]
                frags += [{"index": i, "function": {"arguments": p}} for p in pieces[1:]]
                frags.append({"index": i, "function": {"name": name}})
            else:
                frags = [{**ident, "function": {"name": name, "arguments": ""}}]
                frags += [{"index": i, "function": {"arguments": p}} for p in pieces]
            if r.omit_index:
                for f in frags:
                    del f["index"]
            per_call.append(frags)
        if not r.interleave_tools:
            return [f for frags in per_call for f in frags]
        out: list[dict] = []
        for step in range(max((len(f) for f in per_call), default=0)):
            out += [frags[step] for frags in per_call if step < len(frags)]
        return out

    def _openai_stream(self, r: Reply, body: dict) -> _Plan:
        cid, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), body.get("model")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        reasoning_field, text = _split_thinking(r, "")
        calls = self._calls(r)
        nl = r.line_ending

        def chunk(delta: dict, finish: str | None = None) -> dict:
            c = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            }
            if include_usage:
                c["usage"] = None
            return c

        def sse(obj: Any) -> bytes:
            data = obj if isinstance(obj, str) else _dumps(obj, indent=1 if r.multiline_data else None)
            comment = f": keep-alive{nl}{nl}" if r.keepalive else ""
            return (comment + "".join(f"data: {line}{nl}" for line in data.split("\n")) + nl).encode()

        chunks = [chunk({"role": "assistant", "content": None if r.content_null else ""})]
        if reasoning_field:
            chunks += [chunk({reasoning_field: p}) for p in _pieces(r.thinking, r.chunk_size)]
        chunks += [chunk({"content": p}) for p in _pieces(text, r.chunk_size)]
        chunks += [chunk({"tool_calls": [f]}) for f in self._tool_fragments(r, calls)]
        if not r.omit_finish:
            chunks.append(chunk({}, r.finish_reason or ("tool_calls" if calls else "stop")))
        if include_usage:
            last = chunk({})
            last["usage"] = self._usage(r, body, text, calls)
            if r.usage_choices == "missing":
                del last["choices"]
            else:
                last["choices"] = None if r.usage_choices == "null" else []
            chunks.append(last)
        done = sse("[DONE]")
        error = sse(openai_error(r.mid_stream_error or "", "server_error"))
        frames = [sse(c) for c in chunks]
        bad = sse('{"choices": [{"ind')
        return self._stream_plan(r, "text/event-stream; charset=utf-8", frames, lambda: done, error, bad)

    async def _openai_models(self, request: Request) -> JSONResponse:
        await self._record(request)
        data, listed = [], []
        for name, info in self.models.items():
            entry: dict[str, Any] = {"id": name, "object": "model", "created": 0, "owned_by": "fake"}
            vision = "vision" in info["capabilities"]
            if info["openai_listing"] == "llamacpp":  # llama-server's shape (a real answer, trimmed)
                entry.update(owned_by="llamacpp", aliases=[name], tags=[],
                             architecture={"input_modalities": ["text", "image"] if vision else ["text"],
                                           "output_modalities": ["text"]},
                             meta={"vocab_type": 1, "n_vocab": 262144, "n_ctx": info["num_ctx"] or 4096,
                                   "n_ctx_train": info["context_length"], "n_params": 268098176})  # fmt: skip
                listed.append({"name": name, "model": name, "type": "model",
                               "capabilities": ["completion", "multimodal"] if vision else ["completion"]})  # fmt: skip
            elif info["openai_listing"] == "vllm":
                entry.update(owned_by="vllm", root=name, parent=None, max_model_len=info["context_length"])
            data.append(entry)
        body: dict[str, Any] = {"object": "list", "data": data}
        if listed:
            body = {"models": listed, **body}
        return JSONResponse(body)

    # -- Ollama (section B) ------------------------------------------------------------

    async def _ollama_chat(self, request: Request) -> _Exchange | JSONResponse:
        rec = await self._record(request)
        body = rec.json
        if not isinstance(body, dict):
            return JSONResponse(ollama_error("invalid character in request body"), status_code=400)
        model = body.get("model")
        info = self.models.get(model)
        if body.get("think") and info and "thinking" not in info["capabilities"]:  # B-6
            return JSONResponse(ollama_error(f'"{model}" does not support thinking'), status_code=400)
        r = self._next_reply(model)
        streaming = body.get("stream", True) is not False  # streaming is the default (B-1)

        def default_error() -> dict:
            if r.status == 404:
                return ollama_error(f'model "{model}" not found, try pulling it first')
            return ollama_error(f"fake error (HTTP {r.status})")

        plan = self._plan(r, streaming, default_error)
        if plan is None:
            plan = self._ollama_reply(r, body, streaming)
        return _Exchange(self, rec, plan)

    def _ollama_reply(self, r: Reply, body: dict, streaming: bool) -> _Plan:
        model, started = body.get("model"), time.monotonic_ns()
        thinking_field, text = _split_thinking(r, "thinking")
        calls = self._calls(r)
        # Arguments stay objects (B.3); an empty id means an older server without id/index.
        wire_calls = [
            {"id": cid, "function": {"index": i, "name": n, "arguments": a}}
            if cid
            else {"function": {"name": n, "arguments": a}}
            for i, (n, a, cid) in enumerate(calls)
        ]
        usage = self._usage(r, body, text, calls)

        def line(message: dict, done: bool = False) -> dict:
            message = {"role": "assistant", "content": "", **message}
            return {"model": model, "created_at": _rfc3339_ns(), "message": message, "done": done}

        def final(message: dict) -> bytes:
            total = max(3, time.monotonic_ns() - started)
            obj = line(message, done=True)
            if not r.omit_finish:
                obj["done_reason"] = r.finish_reason or "stop"  # never "tool_calls" (B-8)
            obj.update(total_duration=total, load_duration=1, prompt_eval_duration=1, eval_duration=total - 2,
                       prompt_eval_count=usage["prompt_tokens"], eval_count=usage["completion_tokens"])  # fmt: skip
            return (_dumps(obj) + "\n").encode()

        if not streaming:
            message: dict[str, Any] = {"content": text}
            if thinking_field:
                message["thinking"] = r.thinking
            if wire_calls:
                message["tool_calls"] = wire_calls
            return _whole(r, "application/json; charset=utf-8", lambda: final(message))
        lines = [line({"thinking": p}) for p in _pieces(r.thinking, r.chunk_size)] if thinking_field else []
        lines += [line({"content": p}) for p in _pieces(text, r.chunk_size)]
        if wire_calls:  # whole calls, arguments as an object, all in one chunk (B.2)
            lines.append(line({"tool_calls": wire_calls}))
        frames = [(_dumps(obj) + "\n").encode() for obj in lines]
        error = (_dumps(ollama_error(r.mid_stream_error or "")) + "\n").encode()
        return self._stream_plan(r, "application/x-ndjson", frames, lambda: final({}), error, b'{"model":"\n')

    async def _ollama_tags(self, request: Request) -> JSONResponse:
        await self._record(request)
        models = [
            {"name": name, "model": name, "modified_at": _rfc3339_ns(), "size": 1_000_000,
             "digest": uuid.uuid5(uuid.NAMESPACE_URL, name).hex * 2, "details": self._details(info)}
            for name, info in self.models.items()
        ]  # fmt: skip
        return JSONResponse({"models": models})

    async def _ollama_show(self, request: Request) -> JSONResponse:
        rec = await self._record(request)
        name = (rec.json or {}).get("model") or (rec.json or {}).get("name")
        # Unregistered models get the defaults, so tests need not register every name they use.
        info = self.models.get(name) or self.models["fake-model"]
        return JSONResponse(
            {
                "modelfile": f"FROM {name}\n",
                "parameters": f"num_ctx                        {info['num_ctx']}" if info.get("num_ctx") else "",
                "template": "{{ .Prompt }}",
                "details": self._details(info),
                "model_info": {
                    "general.architecture": info["family"],
                    f"{info['family']}.context_length": info["context_length"],
                },
                "capabilities": info["capabilities"],
            }
        )

    @staticmethod
    def _details(info: dict) -> dict:
        family = info["family"]
        return {"parent_model": "", "format": "gguf", "family": family, "families": [family],
                "parameter_size": "1B", "quantization_level": "Q4_K_M"}  # fmt: skip

    # -- HTTP control API (process mode) -----------------------------------------------

    async def _ctl_script(self, request: Request) -> JSONResponse:
        data = await request.json()
        try:
            replies = [Reply(content=d) if isinstance(d, str) else Reply.from_dict(d) for d in data.get("replies", [])]
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.script(replies, data.get("model"))
        return JSONResponse({"queued": len(replies)})

    async def _ctl_requests(self, request: Request) -> JSONResponse:
        return JSONResponse({"requests": [asdict(r) for r in self.requests], "disconnects": self.disconnects})

    async def _ctl_reset(self, request: Request) -> JSONResponse:
        self.reset()
        return JSONResponse({"ok": True})

    async def _ctl_models(self, request: Request) -> JSONResponse:
        self.set_model(**await request.json())
        return JSONResponse({"ok": True})

    async def _not_found(self, request: Request) -> PlainTextResponse:
        await self._record(request)  # a wrong URL from the runtime shows up in the log
        return PlainTextResponse("404 page not found", status_code=404)


class _HideCuts(logging.Filter):
    """Truncated streams are deliberate; uvicorn would log each one as an app error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


_HIDE_CUTS = _HideCuts()


def _uvicorn_server(app: Starlette, in_process: bool) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        log_config=None if in_process else uvicorn.config.LOGGING_CONFIG,  # leave pytest's logging alone
        loop="asyncio",
        http="auto",  # httptools when installed, else h11
        lifespan="off",
        backlog=4096,
        timeout_graceful_shutdown=1,
    )
    logging.getLogger("uvicorn.error").addFilter(_HIDE_CUTS)
    return uvicorn.Server(config)


def _listen(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP: asyncio switches Nagle off only for such sockets; with proto 0 the
    # body waits for the client's delayed ACK (~40 ms a request), which no real server does.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    return sock


class FakeLLMServer(FakeLLM):
    """In-process server: uvicorn on a free 127.0.0.1 port, in a thread with its own loop."""

    def __init__(self, default_chunks: int = 1, default_delay: float = 0.0, port: int = 0) -> None:
        super().__init__(default_chunks, default_delay)
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def openai_base(self) -> str:
        return self.url + "/v1"

    @property
    def ollama_base(self) -> str:
        return self.url

    def start(self) -> FakeLLMServer:
        sock = _listen("127.0.0.1", self._port)
        self._port = sock.getsockname()[1]
        server = self._server = _uvicorn_server(self.app, in_process=True)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name="fake-llm", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server and self._thread:
            self._server.should_exit = True
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeLLMClient(_Controls):
    """Controls a fake started as a process, with the same methods as FakeLLMServer."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.openai_base = self.url + "/v1"
        self.ollama_base = self.url
        self._http = httpx.Client(base_url=self.url, timeout=10)

    def script(self, replies: Reply | str | Iterable[Reply | str | dict], model: str | None = None) -> None:
        """Like FakeLLM.script; plain dicts are sent as they are (the server validates them)."""
        if isinstance(replies, (Reply, str)):
            replies = [replies]
        payload = [r.to_dict() if isinstance(r, Reply) else r for r in replies]
        self._http.post("/_fake/script", json={"model": model, "replies": payload}).raise_for_status()

    def set_model(self, name: str, **info: Any) -> None:
        self._http.post("/_fake/models", json={"name": name, **info}).raise_for_status()

    def reset(self) -> None:
        self._http.post("/_fake/reset").raise_for_status()

    def _log(self) -> dict:
        resp = self._http.get("/_fake/requests")
        resp.raise_for_status()
        return resp.json()

    @property
    def requests(self) -> list[RecordedRequest]:  # type: ignore[override]  # read from the fake's process on each access
        return [RecordedRequest.from_dict(d) for d in self._log()["requests"]]

    @property
    def disconnects(self) -> int:  # type: ignore[override]  # read from the fake's process on each access
        return self._log()["disconnects"]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FakeLLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI/Ollama model server for tests and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--default-chunks", type=int, default=1, help="content chunks of the default reply")
    parser.add_argument("--default-delay", type=float, default=0.0, help="seconds between default chunks")
    args = parser.parse_args(argv)
    fake = FakeLLM(args.default_chunks, args.default_delay)
    sock = _listen(args.host, args.port)
    # Listening already, so whoever reads this line can connect at once.
    print(f"fake_llm listening on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    _uvicorn_server(fake.app, in_process=False).run(sockets=[sock])


if __name__ == "__main__":
    main()
