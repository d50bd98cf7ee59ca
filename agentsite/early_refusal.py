"""Refusing a stranger's big request from its headers, inside Daphne.

Daphne (Twisted) receives a request's whole body — into a temporary file past 100 KB — and
copies it into the ASGI queue before the app sees the request, so ``agentsite/guard.py`` can
answer a stranger's 30 MB body with a 401 only after the worker has paid for reading it. Here,
once the headers are in, a request that the guard would refuse anyway is answered at once when
its declared body is large: on a guarded path without any credentials (401), or over
``AGENTSITE_MAX_BODY_MB`` anywhere (413). The rest of its body is still read from the socket
(a client, or nginx in front, sends its whole body before it reads the answer: closing with
unread data would reset the connection, and a proxy may then answer 502 and count the worker
as failed), but discarded by the kernel without a copy (``MSG_TRUNC``), and the connection is
closed once it has all arrived, or after ``LINGER_S`` whatever the client still sends.

Smaller bodies take the usual way (the guard answers them as before). ``install()`` runs when
``agentsite.asgi`` is imported, which Daphne does before it builds its HTTP factory. The same
request class also keeps Twisted from parsing form bodies the app parses anyway, and sends the
first bytes of each answer at once.
"""

from __future__ import annotations

import contextlib
import json
import socket
from functools import cache
from typing import Any

from daphne import http_protocol
from django.conf import settings
from twisted.internet import main

from core.errors import DomainError
from core.jsonbody import RequestTooLarge

from . import guard

# Below this, reading the body costs little and the request goes the usual way. Above Twisted's
# 64 KB read size, so the body never completes in the read that carried the headers.
EARLY_BYTES = 256 * 1024
# nginx's lingering_time: how long a refused body may keep arriving before the connection is cut.
LINGER_S = 30.0
# One read discards up to this much (the kernel frees it; on a system without MSG_TRUNC for TCP
# it is copied here and overwritten).
_SINK = bytearray(1 << 20)
_WAKE_BYTES = 512 * 1024


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


@cache  # a handful of (shape, error) pairs: the bytes are built once, not per attack
def _response(openai_shape: bool, status: int, code: str, message: str) -> bytes:
    error = DomainError(message, code=code, status=status)
    body = json.dumps(guard.error_body(guard.OPENAI_PREFIX if openai_shape else "/", error)).encode()
    headers = [(b"Content-Type", b"application/json"), (b"Content-Length", str(len(body)).encode()),
               (b"Connection", b"close")]
    if status == 401:
        headers.append((b"WWW-Authenticate", b'Bearer realm="api"'))
    reason = b"Unauthorized" if status == 401 else b"Payload Too Large"
    head = b"HTTP/1.1 %d %s\r\n" % (status, reason) + b"".join(b"%s: %s\r\n" % h for h in headers)
    return head + b"\r\n" + body


class EarlyRefusingRequest(http_protocol.WebRequest):
    _linger: Any = None  # the timer that cuts a refused body short

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Daphne hands the app the body as it came; Twisted would first parse a form or multipart
        # POST itself (before the guard has seen who sends it: work a stranger chooses, on every
        # POST at least its Content-Type through the email package) and answer one it cannot
        # parse with a bare 400 of its own instead of the app's error.
        self._parsePOSTFormSubmission = False

    def handle_reply(self, message: Any) -> None:
        channel, first = self.channel, not self.startedWriting
        super().handle_reply(message)
        # Twisted sends what is written only once the loop next polls the socket, after every
        # other ready callback: a stream's first event waited for the run to handle the chunks
        # that came with it. The first write of an answer goes out at once (later ones are still
        # batched per turn of the loop; a connection being closed is left to the reactor, which
        # finishes the close after its last write).
        if first and self.startedWriting and channel is not None and not channel.transport.disconnecting:
            channel.transport.doWrite()

    def gotLength(self, length: int | None) -> None:
        channel: Any = self.channel
        path = channel._path.decode("latin-1").split("?", 1)[0]  # Twisted keeps the request line's path here
        first = self.requestHeaders.getRawHeaders
        authorization, cookie = (first(b"authorization") or [None])[0], (first(b"cookie") or [None])[0]
        error = refusal(path, authorization and authorization.decode("latin-1"), cookie and cookie.decode("latin-1"), length)
        if error is None:
            super().gotLength(length)  # where Twisted opens the body's temporary file
            return
        assert length is not None
        channel.transport.write(_response(path.startswith(guard.OPENAI_PREFIX), error.status, error.code, error.message))
        self._discard(channel, length)

    def _discard(self, channel: Any, length: int) -> None:
        """Drop the next ``length`` bytes of this connection unread, then close it."""
        transport, left = channel.transport, length
        self._linger = channel.callLater(LINGER_S, transport.abortConnection)

        def count(n: int) -> None:
            nonlocal left
            left -= n
            if left <= 0:
                channel.loseConnection()
            else:
                wake_at(left)

        def wake_at(remaining: int) -> None:
            # Woken only once this much has arrived (or the peer closes), not for every segment:
            # a refused body then costs a few wake-ups of the loop instead of one per 64 KiB.
            with contextlib.suppress(OSError):
                transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, min(remaining, _WAKE_BYTES))

        def drain() -> Any:
            # Stands in for the transport's doRead: one recv per wake-up, nothing copied into Python.
            try:
                n = transport.socket.recv_into(_SINK, len(_SINK), socket.MSG_TRUNC)
            except BlockingIOError:
                return None
            except OSError:
                return main.CONNECTION_LOST
            if not n:
                return main.CONNECTION_DONE
            count(n)
            return None

        channel.rawDataReceived = lambda data: count(len(data))  # what came with the headers
        transport.doRead = drain
        wake_at(left)

    def connectionLost(self, reason: Any) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)


def install() -> None:
    """Have Daphne build its requests from ``EarlyRefusingRequest`` (its HTTP factory names the
    request class through this module attribute)."""
    http_protocol.WebRequest = EarlyRefusingRequest
