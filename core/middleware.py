"""The innermost middleware: it keeps Django's middleware chain in one thread per request.

Under ASGI, Django adapts each middleware to the mode of the one inside it. Django's own
middlewares (sessions, CSRF, authentication, messages…) are ``MiddlewareMixin`` classes: in
async mode each of their hooks is a ``sync_to_async`` hop to the request's thread and back,
about a dozen hops per request, and WhiteNoise (sync only) adds one more turn. With this
sync-only middleware innermost, Django builds the whole chain sync: it runs in the request's
thread in one go, as do the sync views (the API and the admin), and only an async view changes
mode. The inference views are served outside this chain (``agentsite.hotpath``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase


def sync_chain(get_response: Callable[[HttpRequest], HttpResponseBase]) -> Callable[[HttpRequest], HttpResponseBase]:
    def middleware(request: HttpRequest) -> HttpResponseBase:
        return get_response(request)

    return middleware
