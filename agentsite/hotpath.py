"""The inference endpoints and the health probe served straight from ASGI, without Django's
request handler.

``/v1/infer``, ``/v1/infer/stream``, ``/v1/tools/call`` and ``/openai/v1/chat/completions`` are
async views that authenticate, check CSRF and shape their errors themselves, and the guard in
front (``agentsite.guard``) has already identified the caller and parsed the body; ``/healthz``
(a load balancer's probe) needs no session, user or CSRF at all. What Django's
``ASGIHandler`` would add per request is pure cost here: a spooled temporary file for the body,
the ``request_started``/``request_finished`` signals (each a hop to Django's one sync thread;
what our own receivers do is done here, ``_request_started``), URL resolution and the
middleware chain. This handler builds the request, calls the same view
the URLconf names (so the test client and a live worker run one implementation), and writes
its response to the socket itself, cancelling the view when the client goes away, as Django
does. Everything else keeps the full stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponseBase

from core.api import json_500
from core.db import close_broken_connections, pooled
from core.health import healthz
from core.secrets import refresh_if_stale, scrubber
from inference import openai_views, views

log = logging.getLogger("django.request")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HOT_VIEWS: dict[str, Callable[..., Awaitable[HttpResponseBase]]] = {
    "/v1/infer": views.infer,
    "/v1/infer/stream": views.infer_stream,
    "/v1/tools/call": views.call_tool,
    "/openai/v1/chat/completions": openai_views.chat_completions,
    "/healthz": healthz,
}
HOT_PATHS = frozenset(HOT_VIEWS)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (the guard hands it over in one message); None if the client left."""
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _start(response: HttpResponseBase) -> Message:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    headers += [(b"set-cookie", c.output(header="").encode("ascii").strip()) for c in response.cookies.values()]
    return {"type": "http.response.start", "status": response.status_code, "headers": headers}


async def _respond(response: HttpResponseBase, send: Send, *, head: bool = False) -> None:
    if isinstance(response, views.EventStream):  # the only streamed answer of these views
        await send(_start(response))
        async for chunk in response.frames:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    content = getattr(response, "content", b"")
    if not response.has_header("Content-Length"):
        response["Content-Length"] = str(len(content))
    await send(_start(response))
    await send({"type": "http.response.body", "body": b"" if head else content})


async def _serve(scope: Scope, body: bytes, send: Send) -> None:
    request = ASGIRequest(scope, io.BytesIO(body))
    try:
        response = await HOT_VIEWS[scope["path"]](request)
    except Exception:  # as Django's handler: logged, answered 500 in the envelope
        log.exception("Internal Server Error: %s", scope["path"])
        response = json_500(request)
    await _respond(response, send, head=scope["method"] == "HEAD")


class HotPathHandler:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            return
        token = pooled.set(True)  # no per-request thread: ORM work goes to the shared pool (core.db)
        try:
            await _request_started()
            serving = asyncio.ensure_future(_serve(scope, body, send))
            gone = asyncio.ensure_future(_disconnected(receive))
            await asyncio.wait((serving, gone), return_when=asyncio.FIRST_COMPLETED)
            # A client that leaves cancels its view (and with it the model call), as in Django.
            for task in (gone, serving):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            pooled.reset(token)


async def _request_started() -> None:
    """What this project's ``request_started`` receiver does, without the signal's thread hop:
    the secret scrubber knows every current secret (the bus listener: ``agentsite.asgi``)."""
    if scrubber.stale:
        await sync_to_async(_refresh_secrets, thread_sensitive=False)()


def _refresh_secrets() -> None:
    try:
        refresh_if_stale()
    finally:
        close_broken_connections()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
