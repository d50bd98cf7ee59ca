"""Runs in progress in this worker process, so a cancel request can reach them.

A cancel is first tried locally; otherwise (several workers, ``REDIS_URL`` set) it is
broadcast on the bus, and the worker holding the run cancels it.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from core import bus

CANCEL = "run.cancel"


class Cancellable(Protocol):
    def cancel(self) -> None: ...


_runs: dict[str, Cancellable] = {}
_lock = threading.Lock()


def register(session_id: str, control: Cancellable) -> None:
    with _lock:
        _runs[session_id] = control


def unregister(session_id: str, control: Cancellable) -> None:
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
    """Cancel here if the run is here; otherwise tell the other workers."""
    if not cancel_local(session_id):
        bus.broadcast({"type": CANCEL, "session_id": session_id})


@bus.on(CANCEL)
def _on_cancel(message: dict[str, Any]) -> None:
    cancel_local(str(message.get("session_id", "")))
