"""Who is the client: the one place that decides which forwarding headers to believe.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only when the direct peer
(``REMOTE_ADDR``, which Daphne sets from the TCP connection: ``manage.py serve`` does not pass
``--proxy-headers``) is listed in ``AGENTSITE_TRUSTED_PROXIES``. Then the client is the
right-most ``X-Forwarded-For`` address that is not itself a trusted proxy: every proxy appends
the peer it saw, so everything left of that was written by the client and proves nothing.
See docs/deploy.md ("Client addresses behind nginx").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from functools import lru_cache

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``10.0.0.1``, ``10.0.0.0/8``, ``::1`` … as networks; ValueError names a bad entry."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {entry!r}") from None
    return tuple(networks)


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return parse_networks(entries)


def trusted_networks() -> tuple[IPNetwork, ...]:
    return _networks(tuple(settings.AGENTSITE.get("TRUSTED_PROXIES", ())))


def parse_ip(value: str | None) -> IPAddress | None:
    """An address as a proxy may write it: ``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80``, ``::1``."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("["):  # [v6]:port
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_trusted(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def peer_is_trusted(request: HttpRequest) -> bool:
    """Whether the direct peer is one of our reverse proxies."""
    networks = trusted_networks()
    peer = parse_ip(request.META.get("REMOTE_ADDR"))
    return bool(networks) and peer is not None and _is_trusted(peer, networks)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address (normalised text), or None when even the peer is unknown."""
    peer = parse_ip(request.META.get("REMOTE_ADDR"))
    if peer is None:
        return None
    networks = trusted_networks()
    if not networks or not _is_trusted(peer, networks):
        return str(peer)  # a direct client: whatever it says in X-Forwarded-For is its own claim
    client = peer
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = parse_ip(hop)
        if ip is None:
            break  # garbage where a trusted proxy should have written an address: stop at the last good one
        client = ip
        if not _is_trusted(ip, networks):
            break
    return str(client)


def _drop_untrusted_proto(request: HttpRequest) -> None:
    if "HTTP_X_FORWARDED_PROTO" in request.META and not peer_is_trusted(request):
        del request.META["HTTP_X_FORWARDED_PROTO"]


@sync_and_async_middleware
def trusted_proxy_headers(get_response: Callable) -> Callable:
    """Drops ``X-Forwarded-Proto`` unless a trusted proxy sent it.

    ``SECURE_PROXY_SSL_HEADER`` is only set when ``AGENTSITE_TRUSTED_PROXIES`` is; this keeps a
    client that reaches a worker directly from claiming HTTPS. It comes first in MIDDLEWARE.
    """
    if iscoroutinefunction(get_response):

        async def amiddleware(request: HttpRequest) -> HttpResponse:
            _drop_untrusted_proto(request)
            return await get_response(request)

        return amiddleware

    def middleware(request: HttpRequest) -> HttpResponse:
        _drop_untrusted_proto(request)
        return get_response(request)

    return middleware
