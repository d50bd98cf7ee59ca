"""The inference endpoints and the health probe served without Django's middleware stack.

``/v1/infer``, ``/v1/infer/stream`` and ``/v1/tools/call`` are async views that authenticate,
check CSRF and shape errors themselves; ``/healthz`` (a load balancer's probe) needs no
session, user or CSRF at all. Django's middleware runs each request through several
sync/async thread hops (every ``MiddlewareMixin`` and WhiteNoise), which cost milliseconds per
request — more than the rest of a model round, and far more than a probe. Everything else
keeps the full stack.
"""

from __future__ import annotations

from typing import Any

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

from core.db import pooled

HOT_PATHS = frozenset({"/v1/infer", "/v1/infer/stream", "/v1/tools/call", "/openai/v1/chat/completions", "/healthz"})


class HotPathHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler's private middleware state, emptied: these paths run no middleware.
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = self._get_response_async  # type: ignore[attr-defined]  # private to BaseHandler, absent from django-stubs
        self._middleware_chain = convert_exception_to_response(handler)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # No ThreadSensitiveContext: no per-request thread to create; ORM work goes to the
        # shared pool (core.db).
        token = pooled.set(True)
        try:
            await self.handle(scope, receive, send)
        finally:
            pooled.reset(token)
