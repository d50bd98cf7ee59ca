"""Signals between worker processes over the channel layer (only when ``REDIS_URL`` is set).

Apps register what they handle (``on("run.cancel")(handler)``) in their ``AppConfig.ready``;
the bus itself knows none of them. One listener task per worker, started on its first request,
dispatches each message to the handler registered for its ``type``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_started

log = logging.getLogger(__name__)

GROUP = "agentsite.broadcast"
Handler = Callable[[dict[str, Any]], None]

_handlers: dict[str, Handler] = {}
_listener: asyncio.Task[None] | None = None


def on(kind: str) -> Callable[[Handler], Handler]:
    """Register the (sync) handler of one message type; it runs in a worker thread."""

    def register(handler: Handler) -> Handler:
        _handlers[kind] = handler
        return handler

    return register


def broadcast(message: dict[str, Any]) -> None:
    """Send to every worker (this one included); a no-op without Redis (one process)."""
    if not settings.REDIS_URL:
        return
    async_to_sync(get_channel_layer().group_send)(GROUP, message)


async def _dispatch(message: dict[str, Any]) -> None:
    handler = _handlers.get(str(message.get("type", "")))
    if handler is None:
        log.warning("no handler for broadcast message type %r", message.get("type"))
        return
    await sync_to_async(handler, thread_sensitive=False)(message)


async def _stay_in_group(layer: Any, channel: str) -> None:
    # Redis group memberships expire (channels-redis group_expiry, a day by default).
    while True:
        await layer.group_add(GROUP, channel)
        await asyncio.sleep(3600)


async def _listen() -> None:
    layer = get_channel_layer()
    while True:
        keeper: asyncio.Task[None] | None = None
        try:
            channel = await layer.new_channel()
            keeper = asyncio.create_task(_stay_in_group(layer, channel))
            while True:
                await _dispatch(await layer.receive(channel))
        except asyncio.CancelledError:
            raise
        except Exception:  # Redis went away: keep trying, a worker must not lose its listener
            log.exception("broadcast listener failed; retrying in 1 s")
            await asyncio.sleep(1)
        finally:
            if keeper is not None:
                keeper.cancel()


async def _start_listener(sender: Any, **kwargs: Any) -> None:
    global _listener
    # Only in a real ASGI server: the test client and WSGI have no long-lived loop to run it in.
    if not settings.REDIS_URL or not (isinstance(sender, type) and issubclass(sender, ASGIHandler)):
        return
    if _listener is None or _listener.done():
        _listener = asyncio.get_running_loop().create_task(_listen())


def connect() -> None:
    """Start this worker's listener with its first request (called from ``CoreConfig.ready``)."""
    request_started.connect(_start_listener, dispatch_uid="agentsite-broadcast-listener")


