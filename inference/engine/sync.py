"""The one place that runs the async engine for sync callers (SDK users, admin actions, threads).

Each call gets a private event loop, and closes the HTTP clients that loop opened, never the
clients other loops' requests are using. Not usable from inside a running event loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

from .http import aclose_clients

T = TypeVar("T")


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to its end on a private loop in this thread."""

    async def main() -> T:
        try:
            return await awaitable
        finally:
            await aclose_clients()

    return asyncio.run(main())


def iterate_sync(make: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """Items of an async iterator as they come, produced on a private loop in a helper thread."""
    items: queue.Queue[tuple[str, object]] = queue.Queue()

    async def pump() -> None:
        try:
            async for item in make():
                items.put(("item", item))
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread, which re-raises it
            items.put(("error", exc))
        finally:
            items.put(("end", None))

    thread = threading.Thread(target=lambda: run_sync(pump()), daemon=True)
    thread.start()
    while True:
        kind, value = items.get()
        if kind == "end":
            break
        if kind == "error":
            assert isinstance(value, BaseException)
            raise value
        yield value  # type: ignore[misc]  # an item of the iterator: T
    thread.join()
