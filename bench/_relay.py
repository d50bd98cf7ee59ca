"""A bare ASGI relay, the benchmarks' floor: what any app served by Daphne that forwards a request
to a model server with ``httpx.AsyncClient`` costs, with nothing of agentsite in it.

``RELAY_UPSTREAM`` is the model server's chat URL. The request body goes upstream as it came and
the answer comes back as it arrives (streamed answers chunk by chunk). ``bench/overhead.py``
measures it beside the direct call and ``/v1``, so that the runtime's own share of the added
time (``/v1`` minus relay) stands apart from the server's and the HTTP client's (relay minus
direct).

    RELAY_UPSTREAM=http://127.0.0.1:PORT/v1/chat/completions daphne -v 0 -p 8099 bench._relay:app
"""

from __future__ import annotations

import os
from typing import Any

import httpx

_client: httpx.AsyncClient | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _client
    if scope["type"] != "http":
        return
    if _client is None:
        _client = httpx.AsyncClient(timeout=30)
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    request = _client.build_request("POST", os.environ["RELAY_UPSTREAM"], content=body,
                                    headers={"content-type": "application/json"})
    upstream = await _client.send(request, stream=True)
    try:
        kind = upstream.headers.get("content-type", "application/json").encode()
        await send({"type": "http.response.start", "status": upstream.status_code, "headers": [(b"content-type", kind)]})
        async for chunk in upstream.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    finally:
        await upstream.aclose()
    await send({"type": "http.response.body", "body": b""})
