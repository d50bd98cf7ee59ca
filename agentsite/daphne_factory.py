"""Daphne's HTTP factory without Twisted's own access log.

Daphne writes one access-log line per request itself (to stdout at its default verbosity). Twisted's
``HTTPFactory`` formatted a second, combined-format line for every request and handed it to
Twisted's logging, where no observer of this process reads it: about 2 % of a worker's CPU per
request, for nothing. ``install()`` runs when ``agentsite.asgi`` is imported, before Daphne builds
its factory.
"""

from __future__ import annotations

from typing import Any

from daphne import http_protocol, server


class HTTPFactory(http_protocol.HTTPFactory):
    def log(self, request: Any) -> None:
        return None


def install() -> None:
    server.HTTPFactory = HTTPFactory  # the name Daphne's server builds its factory from
