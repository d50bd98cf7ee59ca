"""Signals between worker processes over the channel layer (only when REDIS_URL is set).

One listener task per worker, started on its first request, receives:
- ``run.cancel``: cancel a run held by this worker (``POST /v1/sessions/{id}/cancel`` sent to
  another worker);
- ``env.changed``: re-read one env-store key from the database into this process's environment.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_started

log = logging.getLogger(__name__)

GROUP = "agentsite.broadcast"
_listener: asyncio.Task[None] | None = None


def broadcast(message: dict[str, Any]) -> None:
    """Send to every worker (this one included); a no-op without Redis (one process)."""
    if not settings.REDIS_URL:
        return
    async_to_sync(get_channel_layer().group_send)(GROUP, message)


async def _handle(message: dict[str, Any]) -> None:
    kind = message.get("type")
    if kind == "run.cancel":
        from sessions.runs import cancel_local

        cancel_local(str(message.get("session_id", "")))
    elif kind == "env.changed":
        from registry.services import env_reload_key

        await sync_to_async(env_reload_key)(str(message.get("key", "")))


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
                await _handle(await layer.receive(channel))
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


request_started.connect(_start_listener, dispatch_uid="agentsite-broadcast-listener")
