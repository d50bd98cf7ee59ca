"""/v1/infer, /v1/infer/stream and /v1/tools/call: async Django views (never holding a thread).

DRF is sync, so these are plain async views that share DRF's credentials (Bearer API key or
session + CSRF) and the error envelope. Everything that can be refused is refused before the
event stream begins; afterwards failures arrive as an ``error`` event.
"""

from __future__ import annotations

import json
from importlib import import_module
from typing import Any, AsyncIterator, Callable

from django.conf import settings
from django.contrib.auth import aget_user
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authentication import CSRFCheck
from rest_framework.exceptions import ValidationError
from rest_framework.serializers import Serializer

from agentsite.db import db_async
from agentsite.errors import ApiError, error_response, exception_handler
from inference.engine.errors import EngineError
from inference.engine.types import StreamEvent
from registry.auth import BAD_KEY_MESSAGE, bearer_token, user_for_api_key
from sessions import services as session_services

from . import services
from .serializers import InferRequestSerializer, ToolCallRequestSerializer

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class _Refused(Exception):
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


async def _session_user(request: HttpRequest) -> Any:
    """The logged-in browser user, with the CSRF check DRF applies to session auth."""
    if not hasattr(request, "session"):  # the hot path has no session middleware: load it here
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    user = await aget_user(request)
    if not user.is_authenticated:
        raise _Refused(error_response("not_authenticated", "Authentication credentials were not provided.", 401))
    check = CSRFCheck(lambda req: HttpResponse())
    check.process_request(request)
    if check.process_view(request, None, (), {}) is not None:
        raise _Refused(error_response("permission_denied", "CSRF token missing or incorrect.", 403))
    return user


def _key_user(header: str) -> Any:
    """The owner of a Bearer API key (sync: called inside the request's one ORM hop)."""
    token = bearer_token(header)
    user = user_for_api_key(token) if token else None
    if user is None:
        raise _Refused(error_response("authentication_failed", BAD_KEY_MESSAGE, 401))
    return user


async def _with_user(request: HttpRequest, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Authenticate and run ``work(user, ...)`` — for API keys in one database round trip."""
    header = request.headers.get("Authorization")
    if header:
        return await db_async(lambda: work(_key_user(header), *args, **kwargs))()
    user = await _session_user(request)
    return await db_async(work)(user, *args, **kwargs)


def _parse(request: HttpRequest, serializer_class: type[Serializer]) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Refused(error_response("malformed_json", f"Request body is not valid JSON: {exc}", 400)) from None
    ser = serializer_class(data=body)
    if not ser.is_valid():
        res = exception_handler(ValidationError(ser.errors), {})
        raise _Refused(JsonResponse(res.data, status=400))
    return dict(ser.validated_data)


def _engine_error(exc: EngineError | ApiError) -> JsonResponse:
    if isinstance(exc, ApiError):
        return error_response(exc.code, exc.message, exc.status_code, exc.extra)
    return JsonResponse(exc.to_dict(), status=exc.status)


def _api_view(fn: Callable[..., Any]) -> Callable[..., Any]:
    async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            response = error_response("method_not_allowed", f'Method "{request.method}" not allowed.', 405)
            response["Allow"] = "POST"
            return response
        try:
            return await fn(request, *args, **kwargs)
        except _Refused as refused:
            return refused.response
        except (EngineError, ApiError) as exc:
            return _engine_error(exc)

    view.__name__ = fn.__name__
    view.__doc__ = fn.__doc__
    return csrf_exempt(view)


def _public(event: StreamEvent) -> dict[str, Any]:
    return {k: v for k, v in event.data.items() if k not in ("result", "exception")}


def sse_format(event: StreamEvent) -> bytes:
    if event.event == "ping":
        return b": ping\n\n"
    return f"event: {event.event}\ndata: {json.dumps(_public(event), ensure_ascii=False)}\n\n".encode()


def _parsed_after_auth(request: HttpRequest, serializer_class: type[Serializer]) -> Callable[[], dict[str, Any]]:
    """Parse now (no I/O), but report a bad body only once the caller is authenticated."""
    try:
        data = _parse(request, serializer_class)
    except _Refused as refused:
        error = refused

        def fail() -> dict[str, Any]:
            raise error

        return fail
    return lambda: data


async def _begin_run(request: HttpRequest) -> session_services.BegunRun:
    """Authenticate, validate, lock the session and fit its history; released on failure."""
    data = _parsed_after_auth(request, InferRequestSerializer)
    begun = await _with_user(request, lambda user: session_services.begin_run(user=user, data=data()))
    try:
        await begun.afit()
    except BaseException:
        await begun.aend()
        raise
    return begun


@_api_view
async def infer(request: HttpRequest) -> HttpResponse:
    """POST /v1/infer: run the model (and its tool loop) and answer the final JSON."""
    begun = await _begin_run(request)
    try:
        result = await services.get_runtime().ainfer(begun.prepared, hooks=begun.hooks, control=begun.control)
    finally:
        await begun.aend()
    return JsonResponse(result.to_dict())


@_api_view
async def infer_stream(request: HttpRequest) -> HttpResponse:
    """POST /v1/infer/stream: the same run as Server-Sent Events."""
    begun = await _begin_run(request)
    ping_s = settings.AGENTSITE["SSE_PING_S"]

    async def events() -> AsyncIterator[bytes]:
        try:
            async for event in services.get_runtime().astream(begun.prepared, hooks=begun.hooks, control=begun.control, ping_s=ping_s):
                yield sse_format(event)
        finally:
            await begun.aend()

    return StreamingHttpResponse(events(), content_type="text/event-stream", headers=SSE_HEADERS)


@_api_view
async def call_tool(request: HttpRequest) -> HttpResponse:
    """POST /v1/tools/call: call one tool directly, without a model."""
    parsed = _parsed_after_auth(request, ToolCallRequestSerializer)

    def find_tool(user: Any) -> tuple[Any, dict[str, Any]]:
        data = parsed()
        if data.get("session_id"):  # the session's scratch folder is only for its owner
            session_services.session_get_for_user(session_id=data["session_id"], user=user)
        return services.tool_for_call(data=data), data

    tool, data = await _with_user(request, find_tool)
    context = services.tool_context(session_id=data.get("session_id"))
    result = await services.get_runtime().acall_tool(tool, data["arguments"], context=context)
    return JsonResponse(result.to_dict())
