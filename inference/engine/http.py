"""The one door for outbound HTTP: every ``httpx.AsyncClient`` of the engine is built here.

Clients are pooled per (event loop, base_url, timeout). An AsyncClient's connections belong to
the loop that opened them, and the engine runs under several loops: Daphne's one loop, and the
sync SDK wrapper's ``asyncio.run`` per call (``sync.run_sync``, which every sync caller goes
through). The per-loop map is weak, so a finished loop's clients are dropped with it; call
``aclose_clients()`` before a loop ends to close their sockets cleanly (``run_sync`` does).

Requests leave through aiohttp (``AiohttpTransport``): the engine keeps httpx's API, errors
and timeouts, and the bytes are moved and parsed by aiohttp's connection pool and C HTTP
parser, which cost a model call about a third of the CPU of httpx's own transport (httpcore,
h11 and anyio, measured by bench/request_profile.py). Tests and benchmarks swap the network out
in one place with ``set_transport_factory``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import aiohttp
import httpx
import orjson

TransportFactory = Callable[[str], httpx.AsyncBaseTransport]


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        # One pooled client serves every user of a model server: a cookie one answer set would be
        # sent on everyone's later calls. (Reading a response's cookies also cost a model call
        # about 8 % of the worker's CPU: urllib request objects built for http.cookiejar.)
        return None


class Client(httpx.AsyncClient):
    """The engine's pooled client: no cookies kept, and a short way for its own JSON calls."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = _NoCookies()  # the constructor would copy a store into a plain one

    async def call(self, method: str, url: str, body: Any, headers: Mapping[str, str], *, stream: bool = False) -> httpx.Response:
        """``request(method, url, json=body, headers=headers)`` (``stream=True``: left open, the
        caller closes it), without the layers these calls never use: authentication flows,
        redirects, cookies, event hooks. They cost a model call a third of httpx's CPU. A URL with
        credentials takes the whole way (httpx turns them into Basic authentication)."""
        full = self._merge_url(url)
        if full.userinfo:
            return await self.send(self.build_request(method, full, json=body, headers=headers), stream=stream)
        merged = httpx.Headers(self.headers)
        merged.update(headers)
        content = None
        if body is not None:
            content = _dumps(body)
            merged["Content-Type"] = "application/json"
        request = httpx.Request(method, full, content=content, headers=merged, extensions={"timeout": self.timeout.as_dict()})
        response = await self._transport_for_url(full).handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response


def _dumps(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:  # what orjson refuses (an integer beyond 64 bits, say): httpx's own encoding
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# 1,000 concurrent streams to one server must not queue on the pool: no connection cap, and a
# keep-alive pool big enough that a burst doesn't reopen most connections.
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=1100, keepalive_expiry=30.0)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, float], Client]]
_clients = weakref.WeakKeyDictionary()
_transport_factory: TransportFactory | None = None


def timeout_for(timeout_s: float) -> httpx.Timeout:
    """Connect fast, but let a slow model think for ``timeout_s`` between bytes (docs/protocols.md E-6)."""
    return httpx.Timeout(connect=10.0, read=timeout_s, write=30.0, pool=10.0)


def get_client(base_url: str, timeout_s: float) -> Client:
    """The pooled client for ``base_url`` on the running event loop (must be called in one)."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    key = (base_url, float(timeout_s))
    client = per_loop.get(key)
    if client is None or client.is_closed:
        transport = (_transport_factory(base_url) if _transport_factory else None) or AiohttpTransport()
        client = Client(base_url=base_url, timeout=timeout_for(timeout_s), limits=LIMITS, transport=transport)
        per_loop[key] = client
    return client


def set_transport_factory(factory: TransportFactory | None) -> None:
    """Route every client built from now on through ``factory(base_url)`` (None = the network).

    Cached clients are forgotten so the next ``get_client`` call picks the new transport up.
    """
    global _transport_factory
    _transport_factory = factory
    _clients.clear()


async def aclose_clients() -> None:
    """Close the running loop's clients (a loop can only close what it opened)."""
    per_loop = _clients.pop(asyncio.get_running_loop(), {})
    await asyncio.gather(*(client.aclose() for client in per_loop.values()), return_exceptions=True)


# aiohttp's failures as the httpx errors the engine maps to its own (model_timeout for a timeout,
# model_unavailable for the rest), the most specific first.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (TimeoutError, httpx.ReadTimeout),  # aiohttp's SocketTimeoutError (no byte within ``read``) is one
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # a malformed status line or header
    (aiohttp.ClientPayloadError, httpx.ReadError),  # the body ended early or its framing broke
    (aiohttp.ClientError, httpx.NetworkError),
    (OSError, httpx.NetworkError),
    (ValueError, httpx.LocalProtocolError),  # a request aiohttp refuses to send (e.g. a bad header)
)


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for raised, ours in _ERRORS:
            if isinstance(exc, raised):
                raise ours(str(exc) or type(exc).__name__, request=request) from exc
        raise


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response, self._request = response, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # Read to its end, the connection goes back to the pool; otherwise it is closed (what is
        # left of the body would be read as the next response).
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport on one ``aiohttp.ClientSession``, opened on first use (in the running
    loop, which its connections belong to). No connection cap, as ``LIMITS``; no cookies kept;
    the body handed over undecoded, as httpx's own transport does (httpx decodes it)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=LIMITS.keepalive_expiry or 30.0)
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        # httpx has turned a URL's user:password into the Authorization header already. (Copying
        # a URL costs more than the rest of the hand-over: only when there is something to drop.)
        url = str(request.url.copy_with(username=None, password=None) if request.url.userinfo else request.url)
        with _as_httpx_errors(request):
            response = await self._opened().request(
                request.method, url, headers=request.headers.multi_items(), data=await request.aread() or None,
                allow_redirects=False, compress=None,
                timeout=aiohttp.ClientTimeout(sock_connect=timeout.get("connect"), sock_read=timeout.get("read")),
            )
        return httpx.Response(
            response.status, headers=list(response.raw_headers), stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1"},  # aiohttp's client speaks nothing else
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
