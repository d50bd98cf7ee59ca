"""/v1/infer, /v1/infer/stream and /v1/tools/call: async Django views (never holding a thread).

DRF is sync, so these are plain async views that accept DRF's credentials (Bearer API key, or
session + CSRF) and answer in the same error envelope. Each one parses, authenticates, calls
one service and renders. Everything that can be refused is refused before the event stream
begins; afterwards failures arrive as an ``error`` event.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.serializers import Serializer

from accounts.auth import asession_user, key_user
from core.api import domain_error_response, error_response, validation_error_body
from core.db import db_async
from core.errors import DomainError
from inference.engine import StreamEvent
from sessions import selectors as session_selectors

from . import services
from .lifecycle import Run, run_begin
from .serializers import InferRequestSerializer, ToolCallRequestSerializer

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class _BadBody(DomainError):
    """A body that failed parsing or validation; reported only once the caller is known."""

    status = 400

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body["error"]["message"], code=body["error"]["code"], detail=body["error"]["detail"])


def _parse(request: HttpRequest, serializer_class: type[Serializer]) -> Callable[[], dict[str, Any]]:
    """Parse now (no I/O), but report a bad body only once the caller is authenticated."""
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        error = _BadBody({"error": {"code": "malformed_json", "message": f"Request body is not valid JSON: {exc}", "detail": {}}})
    else:
        ser = serializer_class(data=body)
        if ser.is_valid():
            data = dict(ser.validated_data)
            return lambda: data
        error = _BadBody(validation_error_body(ser.errors))

    def fail() -> dict[str, Any]:
        raise error

    return fail


async def _with_user(request: HttpRequest, work: Callable[..., Any]) -> Any:
    """Authenticate and run ``work(user)`` in the ORM's thread — for API keys in one hop."""
    header = request.headers.get("Authorization")
    if header:
        return await db_async(lambda: work(key_user(header)))()
    user = await asession_user(request)
    return await db_async(work)(user)


def _api_view(fn: Callable[..., Any]) -> Callable[..., Any]:
    async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            response = error_response("method_not_allowed", f'Method "{request.method}" not allowed.', 405)
            response["Allow"] = "POST"
            return response
        try:
            response: HttpResponse = await fn(request, *args, **kwargs)
        except DomainError as exc:
            return domain_error_response(exc)
        return response

    view.__name__ = fn.__name__
    view.__doc__ = fn.__doc__
    return csrf_exempt(view)


def _public(event: StreamEvent) -> dict[str, Any]:
    return {k: v for k, v in event.data.items() if k not in ("result", "exception")}


def sse_format(event: StreamEvent) -> bytes:
    if event.event == "ping":
        return b": ping\n\n"
    return f"event: {event.event}\ndata: {json.dumps(_public(event), ensure_ascii=False)}\n\n".encode()


async def _begin(request: HttpRequest) -> Run:
    """Authenticate, validate, lock the session and fit its history; released on failure."""
    data = _parse(request, InferRequestSerializer)
    run: Run = await _with_user(request, lambda user: run_begin(user=user, data=data()))
    try:
        await run.afit()
    except BaseException:
        await run.aend()
        raise
    return run


@_api_view
async def infer(request: HttpRequest) -> HttpResponse:
    """POST /v1/infer: run the model (and its tool loop) and answer the final JSON."""
    run = await _begin(request)
    try:
        result = await services.get_runtime().ainfer(run.prepared, hooks=run.hooks, control=run.control)
    finally:
        await run.aend()
    return JsonResponse(result.to_dict())


@_api_view
async def infer_stream(request: HttpRequest) -> HttpResponse:
    """POST /v1/infer/stream: the same run as Server-Sent Events."""
    run = await _begin(request)
    ping_s = settings.AGENTSITE["SSE_PING_S"]

    async def events() -> AsyncIterator[bytes]:
        try:
            async for event in services.get_runtime().astream(run.prepared, hooks=run.hooks, control=run.control, ping_s=ping_s):
                yield sse_format(event)
        finally:
            await run.aend()

    return StreamingHttpResponse(events(), content_type="text/event-stream", headers=SSE_HEADERS)


@_api_view
async def call_tool(request: HttpRequest) -> HttpResponse:
    """POST /v1/tools/call: call one tool directly, without a model."""
    parsed = _parse(request, ToolCallRequestSerializer)

    def find_tool(user: Any) -> tuple[Any, dict[str, Any]]:
        data = parsed()
        if data.get("session_id"):  # the session's scratch folder is only for its owner
            session_selectors.session_get_for_user(session_id=data["session_id"], user=user)
        return services.tool_for_call(data=data), data

    tool, data = await _with_user(request, find_tool)
    runtime = services.get_runtime()
    result = await runtime.acall_tool(tool, data["arguments"], context=runtime.tool_context(data.get("session_id")))
    return JsonResponse(result.to_dict())
