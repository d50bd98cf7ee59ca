"""Reading our own event stream in in-process tests (Django's test client)."""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import async_to_sync


def parse_sse(raw: bytes) -> list[tuple[str, Any]]:
    """A strict reader of our own event stream: (event, data) pairs, pings as ('ping', None)."""
    events: list[tuple[str, Any]] = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        if block.startswith(":"):
            events.append(("ping", None))
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def streamed_body(response: Any) -> bytes:
    """The whole body of a streaming response (an async iterator under ASGI views)."""

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)()
