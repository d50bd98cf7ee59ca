"""MCP client transports with a per-message size limit (``AGENTSITE_MCP_MAX_MESSAGE_MB``).

The SDK's transports either have no limit (stdio, streamable HTTP JSON bodies) or a fixed 1 MiB
one that ends the whole connection (legacy SSE) - and a lost connection made the manager run the
call again. Here every transport reads messages as bytes, counts them as they arrive and, when
one is over the limit, drops it without buffering the rest and answers the request it belonged
to with a JSON-RPC error (``MESSAGE_TOO_LARGE``); the connection stays up.

* stdio: the SDK's ``stdio_client`` with a bounded line reader (process start and the spec's
  shutdown sequence are the SDK's own helpers).
* legacy SSE: the SDK's ``sse_client`` with a bounded event reader.
* streamable HTTP: the SDK's own ``max_sse_event_size`` for SSE responses (over the limit the SDK
  answers that one request with an error), and ``CappedTransport`` for JSON responses.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urljoin, urlparse

import anyio
import anyio.lowlevel
import httpx2
import mcp_types
from anyio.abc import TaskStatus
from mcp.client import stdio as sdk_stdio
from mcp.client.stdio import StdioServerParameters
from mcp.shared._httpx_utils import create_mcp_http_client, request_within_origin, stream_within_origin
from mcp.shared.message import SessionMessage

log = logging.getLogger(__name__)

MESSAGE_TOO_LARGE = -32099  # our code for "dropped: over the size limit" (server-defined error range)
TOO_LARGE_TEXT = "MCP message larger than the {mb:g} MB limit (AGENTSITE_MCP_MAX_MESSAGE_MB)"
# Kept of a dropped message to find its JSON-RPC id: SDK servers write the id first, the
# TypeScript SDK last ({"result": ..., "jsonrpc": "2.0", "id": 3}).
_HEAD = 4096
_TAIL = 256
_ID = rb'("(?:[^"\\]|\\.)*"|-?\d+)'
_HEAD_ID = re.compile(rb'^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*' + _ID)
_TAIL_ID = re.compile(rb'"id"\s*:\s*' + _ID + rb"\s*\}\s*$")
_SSE_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-store"}


@dataclass(frozen=True, slots=True)
class Oversized:
    """A line over the limit: only its first and last bytes were kept."""

    head: bytes
    tail: bytes


def too_large_reply(dropped: Oversized, limit: int) -> SessionMessage | Exception:
    """The error answering the request a dropped message belonged to; an exception (surfaced
    to the session like an unparsable line) when its id can't be found."""
    match = _HEAD_ID.match(dropped.head) or _TAIL_ID.search(dropped.tail)
    text = TOO_LARGE_TEXT.format(mb=limit / 1024 / 1024)
    log.warning("MCP: dropped a message over the limit (%s)", text)
    if match is None:
        return ValueError(text)
    raw = match.group(1)
    request_id: str | int = raw[1:-1].decode("utf-8", "replace") if raw.startswith(b'"') else int(raw)
    error = mcp_types.ErrorData(code=MESSAGE_TOO_LARGE, message=text)
    return SessionMessage(mcp_types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error))


def parse_message(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        return exc


async def bounded_lines(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes | Oversized]:
    """Newline-separated lines of a byte stream (``\\r\\n`` too), each at most ``limit`` bytes;
    a longer one comes as ``Oversized`` and is never held whole. Joining once per line keeps a
    long line linear (the SDK re-joins its buffer on every chunk)."""
    parts: list[bytes] = []
    size = 0
    dropped: tuple[bytes, bytes] | None = None  # (head, tail) of a line being dropped
    async for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            if dropped is not None:
                dropped = (dropped[0], (dropped[1] + piece)[-_TAIL:])
            elif size + len(piece) > limit:
                head = b""
                for part in (*parts, piece):
                    head += part[: _HEAD - len(head)]
                dropped = (head, (b"".join(parts[-1:]) + piece)[-_TAIL:])
                parts, size = [], 0
            else:
                parts.append(piece)
                size += len(piece)
            if end < 0:
                break
            if dropped is not None:
                yield Oversized(dropped[0], dropped[1].rstrip(b"\r"))
            else:
                line = b"".join(parts)
                yield line[:-1] if line.endswith(b"\r") else line
            parts, size, dropped = [], 0, None
            start = end + 1
    if parts and dropped is None:
        yield b"".join(parts)


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                # A StreamError is what the SDK turns into an error for this one request.
                raise httpx2.StreamError(TOO_LARGE_TEXT.format(mb=self._limit / 1024 / 1024))
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class CappedTransport(httpx2.AsyncBaseTransport):
    """Stops reading a JSON response body once it passes ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        if response.headers.get("content-type", "").lower().startswith("application/json"):
            response.stream = _CappedStream(response.stream, self._limit)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def stdio_client(params: StdioServerParameters, errlog: TextIO, limit: int) -> AsyncGenerator[Any]:
    """The SDK's ``stdio_client`` (same spawn, environment and shutdown) with ``bounded_lines``."""
    command = await sdk_stdio._get_executable_command(params.command)
    process = await sdk_stdio._create_platform_compatible_process(
        command=command,
        args=params.args,
        env=sdk_stdio.get_default_environment() | (params.env or {}),
        errlog=errlog,
        cwd=params.cwd,
    )
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
    writer_done = anyio.Event()

    async def stdout_reader() -> None:
        assert process.stdout
        try:
            async with read_writer:
                try:
                    async for line in bounded_lines(process.stdout, limit):
                        message = too_large_reply(line, limit) if isinstance(line, Oversized) else parse_message(line)
                        try:
                            await read_writer.send(message)
                        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                            return
                finally:
                    await sdk_stdio._drain_stdout(process)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, ConnectionError):
            pass  # shutdown closed the pipe under the read, or the child died: the session sees EOF

    async def stdin_writer() -> None:
        assert process.stdin
        try:
            async with write_reader:
                async for message in write_reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await process.stdin.send(data.encode())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_writer.aclose()
        finally:
            writer_done.set()

    async def shutdown() -> None:
        read_stream.close()
        write_stream.close()
        with anyio.move_on_after(sdk_stdio._WRITER_FLUSH_TIMEOUT):
            await writer_done.wait()
        await sdk_stdio._stop_server_process(process)
        await sdk_stdio._aclose_all(read_stream, write_stream, read_writer, write_reader)
        await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stdout_reader)
        tg.start_soon(stdin_writer)
        try:
            yield read_stream, write_stream
        finally:
            # Bounded waits under a shield: a cancelled caller can't leak the child.
            with anyio.CancelScope(shield=True):
                await shutdown()
            tg.cancel_scope.cancel()


async def _sse_events(response: httpx2.Response, limit: int) -> AsyncIterator[tuple[str, bytes | Oversized]]:
    """(event name, data) of a server-sent event stream; data over ``limit`` comes as ``Oversized``."""
    event, data, dropped = "message", list[bytes](), None
    async for line in bounded_lines(response.aiter_bytes(), limit + 16):
        if isinstance(line, Oversized):  # a data line over the limit (the SDK's servers send one per event)
            head = line.head.split(b":", 1)[-1].lstrip()
            dropped = Oversized(head, line.tail)
            continue
        if not line:
            if dropped is not None or data:
                joined = b"\n".join(data)
                yield event, dropped or (joined if len(joined) <= limit else Oversized(joined[:_HEAD], joined[-_TAIL:]))
            event, data, dropped = "message", list[bytes](), None
            continue
        name, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if name == b"event":
            event = value.decode("utf-8", "replace")
        elif name == b"data":
            data.append(value)


@asynccontextmanager
async def sse_client(
    url: str, headers: dict[str, str], *, timeout: float, sse_read_timeout: float, limit: int
) -> AsyncGenerator[Any]:
    """The SDK's legacy ``sse_client`` (same-origin endpoint, redirects within the origin) with
    ``_sse_events`` instead of a 1 MiB event cap that ends the connection."""
    async with (
        create_mcp_http_client(headers=headers, timeout=httpx2.Timeout(timeout, read=sse_read_timeout)) as client,
        stream_within_origin(client, "GET", url, headers=_SSE_HEADERS) as response,
    ):
        response.raise_for_status()
        read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

        async def reader(task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
            async with read_writer:
                async for event, data in _sse_events(response, limit):
                    if event == "endpoint" and isinstance(data, bytes):
                        endpoint = urljoin(url, data.decode())
                        if urlparse(endpoint)[:2] != urlparse(url)[:2]:
                            raise ValueError("the SSE endpoint is on another origin than the connection")
                        task_status.started(endpoint)
                    elif event == "message" and data:
                        await read_writer.send(
                            too_large_reply(data, limit) if isinstance(data, Oversized) else parse_message(data)
                        )

        async def writer(endpoint: str) -> None:
            async with write_reader:
                async for message in write_reader:
                    body = message.message.model_dump(by_alias=True, mode="json", exclude_unset=True)
                    try:
                        (await request_within_origin(client, "POST", endpoint, json=body)).raise_for_status()
                    except httpx2.HTTPError as exc:  # answer the request rather than leave it to time out
                        if isinstance(message.message, mcp_types.JSONRPCRequest):
                            failed = f"sending failed ({type(exc).__name__})"
                            error = mcp_types.ErrorData(code=mcp_types.INTERNAL_ERROR, message=failed)
                            reply = mcp_types.JSONRPCError(jsonrpc="2.0", id=message.message.id, error=error)
                            await read_writer.send(SessionMessage(reply))

        async with read_writer, read_stream, write_stream, write_reader, anyio.create_task_group() as tg:
            endpoint = await tg.start(reader)
            tg.start_soon(writer, endpoint)
            yield read_stream, write_stream
            tg.cancel_scope.cancel()
