"""ORM calls from async code, wherever the request came in.

Through Django's handler, ``sync_to_async`` runs in the request's own thread (Django's
thread-sensitive context), so tests that wrap each test in a transaction see their data. On
the inference hot path (``agentsite.hotpath``) there is no per-request thread: ORM work runs
in the shared thread pool, whose few long-lived threads keep their connections open between
calls (a connection that saw an error is dropped and reopened on next use).
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

T = TypeVar("T")

pooled = contextvars.ContextVar("agentsite_pooled_db", default=False)


def close_broken_connections() -> None:
    """Drop this thread's connections that saw an error; healthy ones stay open for reuse."""
    for conn in connections.all(initialized_only=True):
        if conn.errors_occurred or conn.needs_rollback:
            conn.close()


def db_async(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    @wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> T:
        if not pooled.get():
            return await sync_to_async(fn)(*args, **kwargs)

        def run() -> T:
            try:
                return fn(*args, **kwargs)
            finally:
                close_broken_connections()

        return await sync_to_async(run, thread_sensitive=False)()

    return call
