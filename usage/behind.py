"""Usage writes a run started and did not wait for (``services.usage_record_behind``), so that
this worker's reads of usage can wait for them: what ``GET /v1/usage`` and ``/v1/me`` show
includes every run the worker has answered."""

from __future__ import annotations

import asyncio
import logging
import threading

log = logging.getLogger(__name__)

_done = threading.Condition()
_pending: set[asyncio.Task[None]] = set()


def track(task: asyncio.Task[None]) -> None:
    with _done:
        _pending.add(task)
    task.add_done_callback(_finished)


def _finished(task: asyncio.Task[None]) -> None:
    with _done:
        _pending.discard(task)
        _done.notify_all()
    if not task.cancelled() and task.exception() is not None:
        log.error("usage records lost: %s", task.exception())


def settled(timeout: float = 5.0) -> bool:
    """Wait until the writes started so far are done (sync code, never on the event loop that
    runs them); False if some are still going after ``timeout`` seconds."""
    with _done:
        return _done.wait_for(lambda: not _pending, timeout)
