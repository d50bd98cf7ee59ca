"""The ASGI layer in front of every route: who is calling, and how big the body is, first.

For ``/v1/`` the caller is authenticated from the headers alone (a Bearer API key, or the
session cookie) before a byte of the body is read or parsed: a request without valid
credentials costs one indexed query whatever its size. Then the body is read with a size cap
(``Content-Length`` checked up front, chunked bodies counted as they arrive) and, when it is
JSON, parsed strictly (``core.jsonbody``: depth, ``NaN``, UTF-8, message count) — off the event
loop when it is large. The views find the caller in ``scope["agentsite.user"]`` and the parsed
body in ``scope["agentsite.json"]``; a rejected request reaches no view and writes nothing.
Every other path gets the size cap only.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest

from accounts.auth import AuthenticationFailed, bearer_token, key_user
from accounts.services import known_key_user
from core.db import close_broken_connections
from core.errors import DomainError
from core.jsonbody import RequestTooLarge, parse_json_body
from inference.openai_compat import error_body as openai_error_body

from .shedding import load

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Everything a client reaches with an API key: /v1, the OpenAI-compatible /openai/v1 and /mcp.
GUARDED_PREFIXES = ("/v1/", "/openai/v1/", "/mcp/")
OPENAI_PREFIX = "/openai/v1/"
TOO_LARGE = "Request body is larger than {limit} bytes."
NOT_AUTHENTICATED = "Authentication credentials were not provided."
# Bodies above this are parsed in a worker thread, so a big one never stalls other requests.
PARSE_INLINE_BYTES = 64 * 1024


def is_guarded(path: str) -> bool:
    return path.startswith(GUARDED_PREFIXES) or path == "/mcp"


def is_key_only(path: str) -> bool:
    return path.startswith(OPENAI_PREFIX) or path == "/mcp" or path.startswith("/mcp/")


def error_body(path: str, exc: DomainError) -> dict[str, Any]:
    """Our envelope, or OpenAI's error shape where OpenAI's clients are calling."""
    return openai_error_body(exc) if path.startswith(OPENAI_PREFIX) else exc.to_dict()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _answer(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *(headers or [])],
    })
    await send({"type": "http.response.body", "body": payload})


def _session_user(cookie_header: str | None) -> Any:
    """The user of the session cookie (Django's own ``auth.get_user``), or AnonymousUser."""
    request = HttpRequest()
    cookies = SimpleCookie(cookie_header or "")
    key = cookies[settings.SESSION_COOKIE_NAME].value if settings.SESSION_COOKIE_NAME in cookies else None
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    return auth.get_user(request)


def has_session_cookie(cookie_header: str | None) -> bool:
    return bool(cookie_header) and settings.SESSION_COOKIE_NAME in SimpleCookie(cookie_header)


def _identify(authorization: str | None, cookie_header: str | None) -> Any:
    """Sync (ORM), in a pool thread: the caller, or a DomainError for a 401."""
    try:
        if authorization:
            return key_user(authorization)
        user = _session_user(cookie_header)
        if not user.is_authenticated:
            raise DomainError(NOT_AUTHENTICATED, code="not_authenticated", status=401)
        return user
    finally:
        close_broken_connections()


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(TOO_LARGE.format(limit=limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, then the real channel (it carries ``http.disconnect`` for streams)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def guard(app: ASGIApp) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if not is_guarded(scope["path"]):
            await _checked(app, scope, receive, send)
            return
        try:
            authorization, cookies = _header(scope, b"authorization"), _header(scope, b"cookie")
            if is_key_only(scope["path"]):
                # Machine clients only: a browser's cookie is no credential here (nothing
                # there checks CSRF), so another site cannot borrow a logged-in session.
                cookies = None
            if not authorization and not has_session_cookie(cookies):
                # No credentials at all: refused on the loop, without even a thread hop.
                raise DomainError(NOT_AUTHENTICATED, code="not_authenticated", status=401)
            load.admit(settings.AGENTSITE)  # overloaded: 503 before any thread hop or query
        except DomainError as exc:
            await _refuse(send, scope, exc)
            return
        try:
            await _checked(app, scope, receive, send, authorization, cookies)
        finally:
            load.done()

    return guarded


async def _refuse(send: Send, scope: Scope, exc: DomainError) -> None:
    headers = [(k.lower().encode(), v.encode()) for k, v in exc.headers().items()]
    if isinstance(exc, AuthenticationFailed) or exc.code == "not_authenticated":
        headers.append((b"www-authenticate", b'Bearer realm="api"'))
    await _answer(send, exc.status, error_body(scope["path"], exc), headers)


async def _checked(app: ASGIApp, scope: Scope, receive: Receive, send: Send,
                   authorization: str | None = None, cookies: str | None = None) -> None:
    """The caller identified (guarded paths), the body read within its limit and parsed; then ``app``."""
    conf = settings.AGENTSITE
    limit = conf["MAX_BODY_BYTES"]
    try:
        if is_guarded(scope["path"]):
            token = bearer_token(authorization) if authorization else None
            # A key this worker already knows is checked on the loop: no thread hop, no query.
            user = known_key_user(token) if token else None
            if user is None:
                user = await sync_to_async(_identify, thread_sensitive=False)(authorization, cookies)
            scope["agentsite.user"] = user
        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) > limit:
            raise RequestTooLarge(TOO_LARGE.format(limit=limit))
        body = await _read_body(receive, limit)
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if is_guarded(scope["path"]) and body and content_type == "application/json":
            parse = partial(parse_json_body, body, max_depth=conf["MAX_JSON_DEPTH"], max_messages=conf["MAX_MESSAGES"])
            parsed = await sync_to_async(parse, thread_sensitive=False)() if len(body) > PARSE_INLINE_BYTES else parse()
            scope["agentsite.json"] = parsed
    except ConnectionAbortedError:
        return  # the client left before its body was in: nothing to answer
    except DomainError as exc:
        await _refuse(send, scope, exc)
        return
    await app(scope, _replay(body, receive), send)
