"""Runs in progress in this worker process, so a cancel request can reach them.

A cancel is first tried locally; with several workers (``REDIS_URL`` set) it is also
broadcast on the channel layer, and the worker holding the run cancels it.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from inference.engine.runtime import RunControl

log = logging.getLogger(__name__)

_runs: dict[str, RunControl] = {}
_lock = threading.Lock()
CANCEL_GROUP = "agentsite.cancel"


def register(session_id: str, control: RunControl) -> None:
    with _lock:
        _runs[session_id] = control


def unregister(session_id: str, control: RunControl) -> None:
    with _lock:
        if _runs.get(session_id) is control:
            del _runs[session_id]


def cancel_local(session_id: str) -> bool:
    with _lock:
        control = _runs.get(session_id)
    if control is None:
        return False
    control.cancel()
    return True


def cancel(session_id: str) -> None:
    """Cancel here if the run is here; otherwise tell the other workers (sync context)."""
    if cancel_local(session_id) or not settings.REDIS_URL:
        return
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(CANCEL_GROUP, {"type": "run.cancel", "session_id": session_id})


async def listen_for_cancels() -> None:
    """Run once per worker (started with the ASGI app when Redis is configured)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(CANCEL_GROUP, channel)
    while True:
        try:
            message = await layer.receive(channel)
        except asyncio.CancelledError:
            raise
        except Exception:  # Redis hiccup: keep listening
            log.exception("cancel listener failed; retrying")
            await asyncio.sleep(1)
            continue
        if message.get("type") == "run.cancel":
            cancel_local(message.get("session_id", ""))
