"""The one door for outbound HTTP: every ``httpx.AsyncClient`` of the engine is built here.

Clients are pooled per (event loop, base_url, timeout). An AsyncClient's connections belong to
the loop that opened them, and the engine runs under several loops: Daphne's one loop, and the
sync SDK wrapper's ``asyncio.run`` per call. The per-loop map is weak, so a finished loop's
clients are dropped with it; call ``aclose_clients()`` before a loop ends to close their
sockets cleanly.

Tests and benchmarks swap the network out in one place with ``set_transport_factory``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

import httpx

TransportFactory = Callable[[str], httpx.AsyncBaseTransport]

# 1,000 concurrent streams to one server must not queue on the pool: no connection cap, and a
# keep-alive pool big enough that a burst doesn't reopen most connections.
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=1100, keepalive_expiry=30.0)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, float], httpx.AsyncClient]]
_clients = weakref.WeakKeyDictionary()
_transport_factory: TransportFactory | None = None


def timeout_for(timeout_s: float) -> httpx.Timeout:
    """Connect fast, but let a slow model think for ``timeout_s`` between bytes (docs/protocols.md E-6)."""
    return httpx.Timeout(connect=10.0, read=timeout_s, write=30.0, pool=10.0)


def get_client(base_url: str, timeout_s: float) -> httpx.AsyncClient:
    """The pooled client for ``base_url`` on the running event loop (must be called in one)."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    key = (base_url, float(timeout_s))
    client = per_loop.get(key)
    if client is None or client.is_closed:
        transport = _transport_factory(base_url) if _transport_factory else None
        client = httpx.AsyncClient(
            base_url=base_url, timeout=timeout_for(timeout_s), limits=LIMITS, transport=transport
        )
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
