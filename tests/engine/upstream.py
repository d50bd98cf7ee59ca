"""A scripted model server inside httpx (``MockTransport``) for the protocol adapter tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """Answers every request with ``handler`` and remembers the requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.handler: Handler = lambda request: httpx.Response(500)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)


async def _aiter(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def streamed(raw: bytes, content_type: str, split: int | None = None) -> Handler:
    """A 200 answer streaming ``raw``, optionally cut into ``split``-byte pieces to exercise chunk boundaries."""
    parts = [raw[i : i + split] for i in range(0, len(raw), split)] if split else [raw]
    return lambda request: httpx.Response(200, headers={"content-type": content_type}, content=_aiter(parts))
