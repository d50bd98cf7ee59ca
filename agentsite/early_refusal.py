"""Refusing a stranger's big request from its headers, inside Daphne.

Daphne (Twisted) receives a request's whole body — into a temporary file past 100 KB — and
copies it into the ASGI queue before the app sees the request, so ``agentsite/guard.py`` can
answer a stranger's 30 MB body with a 401 only after the worker has paid for reading it. Here,
once the headers are in, a request that the guard would refuse anyway is answered at once when
its declared body is large: on a guarded path without any credentials (401), or over
``AGENTSITE_MAX_BODY_MB`` anywhere (413). The rest of its body is still read from the socket
(a client sends its whole body before it reads the answer) but dropped unparsed and unstored,
and the connection is closed once it has all arrived.

Smaller bodies take the usual way (the guard answers them as before). ``install()`` runs when
``agentsite.asgi`` is imported, which Daphne does before it builds its HTTP factory.
"""

from __future__ import annotations

import json
from typing import Any

from daphne import http_protocol
from django.conf import settings

from core.errors import DomainError
from core.jsonbody import RequestTooLarge

from . import guard

# Below this, reading the body costs little and the request goes the usual way. Above Twisted's
# 64 KB read size, so the body never completes in the read that carried the headers.
EARLY_BYTES = 256 * 1024


def refusal(path: str, authorization: str | None, cookie: str | None, length: int | None) -> DomainError | None:
    """The error the guard would answer for these headers, when answering it early pays off."""
    if length is None or length < EARLY_BYTES:
        return None
    limit = settings.AGENTSITE["MAX_BODY_BYTES"]
    if length > limit:
        return RequestTooLarge(guard.TOO_LARGE.format(limit=limit))
    if guard.is_guarded(path) and not authorization and not (not guard.is_key_only(path) and guard.has_session_cookie(cookie)):
        return DomainError(guard.NOT_AUTHENTICATED, code="not_authenticated", status=401)
    return None


def _response(path: str, error: DomainError) -> bytes:
    body = json.dumps(guard.error_body(path, error)).encode()
    headers = [(b"Content-Type", b"application/json"), (b"Content-Length", str(len(body)).encode()),
               (b"Connection", b"close")]
    if error.status == 401:
        headers.append((b"WWW-Authenticate", b'Bearer realm="api"'))
    reason = b"Unauthorized" if error.status == 401 else b"Payload Too Large"
    head = b"HTTP/1.1 %d %s\r\n" % (error.status, reason) + b"".join(b"%s: %s\r\n" % h for h in headers)
    return head + b"\r\n" + body


class EarlyRefusingRequest(http_protocol.WebRequest):
    def gotLength(self, length: int | None) -> None:
        super().gotLength(length)
        channel: Any = self.channel
        path = channel._path.decode("latin-1").split("?", 1)[0]  # Twisted keeps the request line's path here
        first = self.requestHeaders.getRawHeaders
        authorization, cookie = (first(b"authorization") or [None])[0], (first(b"cookie") or [None])[0]
        error = refusal(path, authorization and authorization.decode("latin-1"), cookie and cookie.decode("latin-1"), length)
        if error is None:
            return
        channel.transport.write(_response(path, error))
        assert length is not None
        left = length

        def drop(data: bytes) -> None:
            # From now on every byte of this connection lands here: counted, never kept.
            nonlocal left
            left -= len(data)
            if left <= 0:
                channel.loseConnection()

        channel.rawDataReceived = drop


def install() -> None:
    """Have Daphne build its requests from ``EarlyRefusingRequest`` (its HTTP factory names the
    request class through this module attribute)."""
    http_protocol.WebRequest = EarlyRefusingRequest
