"""/openai/v1: the OpenAI-compatible face of the same runs (async views, never holding a thread).

``POST /openai/v1/chat/completions`` translates the body (``openai_compat``), then runs exactly
what ``/v1/infer`` runs: ``run_begin`` (access, quota, session, usage records) and the
runtime's tool loop. Errors are in OpenAI's shape with the same HTTP statuses.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from accounts.auth import arequest_user
from agents.selectors import agent_name_known, agents_for_user
from core.db import db_async
from core.errors import DomainError
from registry.selectors import models_enabled

from . import openai_compat as oa
from .lifecycle import Run, run_begin, run_begin_here
from .services import from_snapshot
from .stream_scrub import scrubbed_events
from .views import EventStream, _body_json

JSON = "application/json"


def _error(exc: DomainError) -> HttpResponse:
    response = HttpResponse(json.dumps(oa.error_body(exc)), status=exc.status, content_type=JSON)
    for name, value in exc.headers().items():
        response[name] = value
    return response


NO_SUCH_PATH = "Unknown path {path!r}: /openai/v1 serves /models and /chat/completions."


def not_found(request: HttpRequest) -> HttpResponse:
    """A path under /openai/v1 that does not exist, in OpenAI's error shape."""
    return _error(DomainError(NO_SUCH_PATH.format(path=request.path), code="not_found", status=404))


def _openai_view(method: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Authenticate first (a stranger learns nothing), then run; every failure in OpenAI's shape."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        async def view(request: HttpRequest) -> HttpResponseBase:
            try:
                user = await arequest_user(request)
                if request.method != method:
                    raise DomainError(f'Method "{request.method}" not allowed.', code="method_not_allowed", status=405)
                result: HttpResponseBase = await fn(request, user)
            except DomainError as exc:
                return _error(exc)
            return result

        view.__name__, view.__doc__ = fn.__name__, fn.__doc__
        return csrf_exempt(view)

    return wrap


@_openai_view("GET")
async def models(request: HttpRequest, user: Any) -> HttpResponse:
    """GET /openai/v1/models: every agent and model the caller may use."""

    def listing() -> str:
        agents = agents_for_user(user=user).values_list("name", "created_at")
        rows = models_enabled(user=user).values_list("model_id", "created_at")
        return oa.model_list(agents=[(n, c.timestamp()) for n, c in agents], models=[(n, c.timestamp()) for n, c in rows])

    return HttpResponse(await db_async(listing)(), content_type=JSON)


def _infer_data(user: Any, body: Any, session: str | None) -> dict[str, Any]:
    """The body as ``run_begin``'s (sync: whether ``model`` names an agent may take a query)."""

    def is_agent(name: str) -> bool:
        return agent_name_known(name) and agents_for_user(user=user).filter(name=name).exists()

    return oa.infer_body(body, is_agent=is_agent, session=session)


def _begin(user: Any, body: Any, session: str | None) -> Run:
    """Translate and begin the run (sync, in the ORM's thread): refused input changes nothing."""
    return run_begin(user=user, data=_infer_data(user, body, session))


def _begin_here(user: Any, body: Any, session: str | None) -> Run | None:
    """``_begin`` on the event loop when the warm registry snapshot answers every read (a
    stateless run of a model, no quota to count: see ``run_begin_here``); else None."""
    data = from_snapshot(lambda: _infer_data(user, body, session))
    return None if data is None else run_begin_here(user=user, data=data)


@_openai_view("POST")
async def chat_completions(request: HttpRequest, user: Any) -> HttpResponseBase:
    """POST /openai/v1/chat/completions: one completion, the server's tool rounds inside it."""
    body = _body_json(request)
    session = request.headers.get(oa.SESSION_HEADER) or None
    run = _begin_here(user, body, session) or await db_async(_begin)(user, body, session)
    try:
        await run.afit()
    except BaseException:
        await run.arelease()
        raise
    stream, include_usage = oa.wants_stream(body)
    model, cid = body["model"], oa.completion_id()
    headers = {oa.SESSION_HEADER: run.session_id} if run.session_id else {}
    runtime = run.runtime
    if not stream:
        result = await runtime.ainfer(run.prepared, hooks=run.hooks, control=run.control)
        return HttpResponse(oa.completion(result, model=model, cid=cid), content_type=JSON, headers=headers)
    writer = oa.ChunkWriter(model=model, cid=cid)
    ping_s = run.conf["SSE_PING_S"]

    async def chunks() -> AsyncIterator[bytes]:
        run_events = runtime.astream(run.prepared, hooks=run.hooks, control=run.control, ping_s=ping_s)
        async for event in scrubbed_events(run_events):
            kind, data = event.event, event.data
            if kind == "delta":
                yield writer.delta(data)
            elif kind == "tool_call" and data["tool_id"].startswith(oa.CLIENT_PREFIX):
                yield writer.tool_call(data)
            elif kind == "ping":
                yield b": ping\n\n"
            elif kind == "done":
                yield writer.finish(data["result"])
                if include_usage:
                    yield writer.usage(data["result"])
            elif kind == "error":
                yield writer.error(data["exception"])
        yield writer.DONE

    return EventStream(chunks(), headers)
