"""The hand-over of a run's events from the run's own task to its one consumer.

The run's task puts events without ever waiting (a slow consumer never holds up the run, its
hooks or its session); the consumer takes them in order and, when it asks for pings, is told
once a single wait has lasted ``ping_s``. This happens once per streamed chunk, so it is kept
cheap: one future per wait, and one timer per ping interval rather than one per wait (a timer
per wait, as ``asyncio.wait_for`` or ``asyncio.timeout`` set, cost more than the rest of the
hand-over).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final, Generic, TypeVar

T = TypeVar("T")


class _Ping:
    def __repr__(self) -> str:
        return "PING"


PING: Final = _Ping()


class Outbox(Generic[T]):
    """A FIFO with one producer that never waits and one consumer that may."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_since = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self, ping_s: float | None = None) -> T | _Ping:
        """The next item; ``PING`` instead once one wait for it has lasted ``ping_s``."""
        if self._items:
            return self._items.popleft()
        loop = asyncio.get_running_loop()
        self._waiting_since = loop.time()
        self._waiter = waiter = loop.create_future()
        if ping_s and self._timer is None:
            self._timer = loop.call_at(self._waiting_since + ping_s, self._check, ping_s)
        try:
            await waiter
        finally:
            self._waiter = None
        return self._items.popleft() if self._items else PING

    def close(self) -> None:
        """No more waits: drop the ping timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self, ping_s: float) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # not waiting now: the next wait sets a timer again
        loop = waiter.get_loop()
        due = self._waiting_since + ping_s
        if loop.time() >= due:
            waiter.set_result(None)  # get() wakes up to an empty queue: a ping
        else:  # this wait began after the timer was set
            self._timer = loop.call_at(due, self._check, ping_s)
