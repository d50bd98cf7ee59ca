"""/v1/infer, /v1/infer/stream and /v1/tools/call: async Django views (never holding a thread).

DRF is sync, so these are plain async views that accept DRF's credentials (Bearer API key, or
session + CSRF) and answer in the same error envelope. Each one parses, authenticates, calls
one service and renders. Everything that can be refused is refused before the event stream
begins; afterwards failures arrive as an ``error`` event.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.serializers import Serializer

from accounts.auth import arequest_user
from core.api import domain_error_response, error_response, validation_error_body
from core.db import db_async
from core.errors import DomainError, ValidationFailed
from core.jsonbody import encode, parse_json_body
from core.secrets import scrub_data
from inference.engine import Runtime, StreamEvent, ToolConfig
from sessions import selectors as session_selectors

from . import services
from .lifecycle import Run, run_begin, run_begin_again, run_begin_here
from .serializers import EditRequestSerializer, InferRequestSerializer, RerunRequestSerializer, ToolCallRequestSerializer
from .stream_scrub import ScrubbedDelta, scrubbed_events

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStream(StreamingHttpResponse):
    """A ``text/event-stream`` answer. Its ``frames`` are bytes ready for the socket: the hot path
    (``agentsite.hotpath``) writes them as they come, without the two generators Django's own
    iteration wraps around each frame (what the test client and Django's handler go through)."""

    def __init__(self, frames: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> None:
        super().__init__(frames, content_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})})
        self.frames = frames


# Bodies above this are validated in a worker thread, so a big one never stalls other streams.
VALIDATE_INLINE_BYTES = 64 * 1024


def _body_json(request: HttpRequest) -> Any:
    """The parsed body: from the ASGI guard when it ran, else parsed here with the same limits."""
    scope = getattr(request, "scope", {})
    if "agentsite.json" in scope:
        return scope["agentsite.json"]
    conf = settings.AGENTSITE
    return parse_json_body(request.body or b"null", max_depth=conf["MAX_JSON_DEPTH"], max_messages=conf["MAX_MESSAGES"])


async def _validated(request: HttpRequest, serializer_class: type[Serializer], *, optional: bool = False) -> dict[str, Any]:
    """The body, parsed and validated (400 in the envelope), off the event loop when it is big.
    With ``optional``, no body at all reads as ``{}``."""

    def validate() -> dict[str, Any]:
        body = _body_json(request)
        ser = _serializer(serializer_class, data={} if optional and body is None else body)
        if not ser.is_valid():
            raise ValidationFailed(**_validation_kwargs(ser.errors))
        return dict(ser.validated_data)

    if len(request.body or b"") > VALIDATE_INLINE_BYTES:
        return await sync_to_async(validate, thread_sensitive=False)()
    return validate()


_serializers = threading.local()


def _serializer(serializer_class: type[Serializer], *, data: Any) -> Serializer:
    """A serializer of ``serializer_class`` for ``data``, reused by this thread: DRF deep-copies
    the whole field tree for every new instance (most of a request's validation time), and a
    reused one starts each validation afresh. One per thread, as validation never yields."""
    known: dict[type[Serializer], Serializer] = _serializers.__dict__.setdefault("known", {})
    ser = known.get(serializer_class)
    if ser is None:
        ser = known[serializer_class] = serializer_class(data=data)
    else:
        ser.initial_data = data
        for done in ("_validated_data", "_errors", "_data"):
            ser.__dict__.pop(done, None)
    return ser


def _validation_kwargs(errors: Any) -> dict[str, Any]:
    body = validation_error_body(errors)["error"]
    return {"message": body["message"], "detail": body["detail"]}


def _api_view(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Authenticate first (a stranger learns nothing, not even the allowed method), then run."""

    async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            user = await arequest_user(request)
            if request.method != "POST":
                response = error_response("method_not_allowed", f'Method "{request.method}" not allowed.', 405)
                response["Allow"] = "POST"
                return response
            result: HttpResponseBase = await fn(request, user, *args, **kwargs)
        except DomainError as exc:
            return domain_error_response(exc)
        return result

    view.__name__ = fn.__name__
    view.__doc__ = fn.__doc__
    return csrf_exempt(view)


def _public(event: StreamEvent) -> dict[str, Any]:
    return {k: v for k, v in event.data.items() if k not in ("result", "exception")}


def sse_format(event: StreamEvent) -> bytes:
    if event.event == "ping":
        return b": ping\n\n"
    public = _public(event)
    if not isinstance(event, ScrubbedDelta):  # an upstream error, a tool's output or the model may echo a secret
        # Scrubbed before it is encoded: in JSON a secret holding a quote or a backslash is
        # written escaped, and the scrubber, looking for the secret itself, would miss it.
        public = scrub_data(public)
    return b"event: " + event.event.encode() + b"\ndata: " + encode(public) + b"\n\n"


async def _begin(request: HttpRequest, user: Any) -> Run:
    """Validate, prepare, lock the session and fit its history; released on failure."""
    data = await _validated(request, InferRequestSerializer)
    run = run_begin_here(user=user, data=data) or await db_async(run_begin)(user=user, data=data)
    try:
        await run.afit()
    except BaseException:
        await run.arelease()
        raise
    return run


async def _begin_again(request: HttpRequest, user: Any, session_id: str, *, edit: bool) -> Run:
    """``_begin`` for a regenerate or an edit of a stored session."""
    data = await _validated(request, EditRequestSerializer if edit else RerunRequestSerializer, optional=not edit)
    change = {"seq": data.pop("seq"), "content": data.pop("content")} if edit else None
    run: Run = await db_async(run_begin_again)(user=user, session_id=session_id, data=data, edit=change)
    try:
        await run.afit()
    except BaseException:
        await run.arelease()
        raise
    return run


def _json(data: Any) -> HttpResponse:
    """A JSON answer, encoded as the stream's events are (orjson: a fraction of json's cost)."""
    return HttpResponse(encode(data), content_type="application/json")


async def _answer(run: Run) -> HttpResponse:
    result = await run.runtime.ainfer(run.prepared, hooks=run.hooks, control=run.control)
    return _json(scrub_data(result.to_dict()))


@_api_view
async def infer(request: HttpRequest, user: Any) -> HttpResponse:
    """POST /v1/infer: run the model (and its tool loop) and answer the final JSON."""
    return await _answer(await _begin(request, user))


@_api_view
async def infer_stream(request: HttpRequest, user: Any) -> EventStream:
    """POST /v1/infer/stream: the same run as Server-Sent Events."""
    return _stream(await _begin(request, user))


@_api_view
async def session_regenerate(request: HttpRequest, user: Any, session_id: str) -> HttpResponse:
    """POST /v1/sessions/{id}/regenerate: answer the last user message again."""
    return await _answer(await _begin_again(request, user, session_id, edit=False))


@_api_view
async def session_regenerate_stream(request: HttpRequest, user: Any, session_id: str) -> EventStream:
    """POST /v1/sessions/{id}/regenerate/stream: the same as Server-Sent Events."""
    return _stream(await _begin_again(request, user, session_id, edit=False))


@_api_view
async def session_edit(request: HttpRequest, user: Any, session_id: str) -> HttpResponse:
    """POST /v1/sessions/{id}/edit: replace user message ``seq`` and answer again."""
    return await _answer(await _begin_again(request, user, session_id, edit=True))


@_api_view
async def session_edit_stream(request: HttpRequest, user: Any, session_id: str) -> EventStream:
    """POST /v1/sessions/{id}/edit/stream: the same as Server-Sent Events."""
    return _stream(await _begin_again(request, user, session_id, edit=True))


def _stream(run: Run) -> EventStream:
    ping_s = run.conf["SSE_PING_S"]
    # The run starts with the first read, in its own task, which releases the session when it
    # ends whatever the client does (a client that goes away cancels it). Should the response
    # never be read at all, the session's lease expires by itself.
    runtime = run.runtime

    async def events() -> AsyncIterator[bytes]:
        run_events = runtime.astream(run.prepared, hooks=run.hooks, control=run.control, ping_s=ping_s)
        async for event in scrubbed_events(run_events):
            yield sse_format(event)

    return EventStream(events())


@_api_view
async def call_tool(request: HttpRequest, user: Any) -> HttpResponse:
    """POST /v1/tools/call: call one tool directly, without a model."""
    data = await _validated(request, ToolCallRequestSerializer)

    def find_tool() -> tuple[ToolConfig, Runtime]:
        if data.get("session_id"):  # the session's scratch folder is only for its owner
            session_selectors.session_get_for_user(session_id=data["session_id"], user=user)
        tool = services.tool_for_call(data=data, user=user)  # not the caller's: 404 like an unknown id
        return tool, services.runtime_for(user)  # its tool context carries the caller: an agent.<name> tool runs for them

    found = None if data.get("session_id") else services.from_snapshot(find_tool)
    tool, runtime = found or await db_async(find_tool)()
    context = runtime.tool_context(data.get("session_id"), owner=services.scratch_owner(user))  # per caller without a session
    result = await runtime.acall_tool(tool, data["arguments"], context=context)
    return _json(scrub_data(result.to_dict()))
