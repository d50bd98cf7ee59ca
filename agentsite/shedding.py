"""Load shedding: under overload a worker refuses new API work with ``503 overloaded`` and a
``Retry-After``, so what it has accepted keeps its pace instead of every stream slowing down
until clients and model servers give up on it.

Two signals, both read on the event loop without a thread hop (``agentsite/guard.py`` asks
before it authenticates a request):

* **requests in progress** on the guarded paths (``/v1``, ``/openai/v1``, ``/mcp``; a stream
  counts until it ends) at ``AGENTSITE_MAX_INFLIGHT``;
* **event-loop lag**: a watcher sleeps ``TICK_S`` at a time and notes how late it wakes. A loop
  that is seconds late (the CPU is saturated, or something blocks it) cannot serve more; past
  ``AGENTSITE_SHED_LAG_S`` new requests are refused until a tick comes in on time again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from core.errors import DomainError

log = logging.getLogger(__name__)

TICK_S = 0.1
RETRY_AFTER_S = 1
OVERLOADED = "The server is busy; try again in a moment."


class Overloaded(DomainError):
    code = "overloaded"
    status = 503

    def __init__(self, reason: str) -> None:
        super().__init__(OVERLOADED, detail={"reason": reason, "retry_after_s": RETRY_AFTER_S})

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(RETRY_AFTER_S)}


class Load:
    """One worker's load, as its event loop sees it."""

    def __init__(self) -> None:
        self.inflight = 0
        self.lag_s = 0.0
        self._watcher: asyncio.Task[None] | None = None

    def admit(self, conf: dict[str, Any]) -> None:
        """Raise ``Overloaded`` if new work must wait; otherwise count the request in."""
        self._watch()
        if self.inflight >= conf["MAX_INFLIGHT"]:
            raise Overloaded(f"{self.inflight} requests in progress (AGENTSITE_MAX_INFLIGHT)")
        if self.lag_s > conf["SHED_LAG_S"]:
            raise Overloaded(f"the worker is {self.lag_s:.1f} s behind (AGENTSITE_SHED_LAG_S)")
        self.inflight += 1

    def done(self) -> None:
        self.inflight -= 1

    def _watch(self) -> None:
        loop = asyncio.get_running_loop()  # Daphne's one loop; each test has its own
        if self._watcher is None or self._watcher.done() or self._watcher.get_loop() is not loop:
            self.lag_s = 0.0
            self._watcher = loop.create_task(self._measure())

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(TICK_S)
            lag = max(0.0, loop.time() - before - TICK_S)
            if lag > 1.0 and self.lag_s <= 1.0:
                log.warning("event loop %.1f s late with %d requests in progress", lag, self.inflight)
            self.lag_s = lag


load = Load()
