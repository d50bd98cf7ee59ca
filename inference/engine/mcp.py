"""The shared MCP client manager: one connection per MCP server per process (docs/design.md).

The pain this fixes is one MCP child process per agent. Here every server has exactly one
connection, shared by every request, thread and event loop of the process:

* ``MCPClientManager`` is a process-wide singleton owning one daemon thread that runs an
  asyncio loop. Each connection is owned by ONE long-lived task on that loop, which enters and
  exits the SDK ``Client`` itself: SDK sessions are anyio task groups and break when closed
  from another task (docs/protocols.md C-3). Requests are queued to that task, run concurrently in
  its task group, and their results come back through futures; callers on other threads or
  loops wait through ``run_coroutine_threadsafe``.
* Connections start lazily. When one dies (child killed, connection closed, HTTP session
  terminated) it is closed and reopened once for the requests that had not been sent yet; a
  tool call that had been sent is never sent again: it answers ``mcp_connection_lost``
  (exactly once, docs/mcp.md). A second failure raises ``MCPCallError``.
* Editing or removing a server cancels its calls (``notifications/cancelled`` to the server,
  ``cancelled`` to the caller) before its connection closes; so does a caller giving up.
* Every message is limited to ``max_message_bytes`` on every transport (mcp_transports.py);
  a bigger one is a tool error and the connection stays up.
* The protocol revision is negotiated by the SDK (``mode="auto"``: the newest revision first,
  the initialize handshake for older servers). Tool lists are cached per server and dropped on
  ``notifications/tools/list_changed`` (handshake era) or a ``subscriptions/listen`` event
  (newest revision); ``on_tools_changed`` is then told the server's name.
* Sampling (a server asking the model, docs/mcp.md) is offered only to servers configured with
  ``"sampling": true``; the model of the run whose tool call asked answers (``Sampling``).
  Elicitation and roots are not offered: the SDK answers such requests "not supported".
* A url configured without a transport type is tried as streamable HTTP; if the server answers
  the ``initialize`` POST with 400/404/405 (a legacy HTTP+SSE server), the connect is retried
  once over SSE and the working transport is remembered for that server config (docs/protocols.md
  C.3 era detection, C.8). An explicit ``type``/``transport`` never falls back.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import ctypes
import json
import logging
import os
import re
import threading
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any, TypeVar

import anyio
import httpx2
import mcp_types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.dispatcher import ProgressFnT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from . import mcp_transports
from .envvars import Lookup
from .errors import DomainError, NotFound, ToolError
from .mcp_config import (
    DEFAULT_TIMEOUT_S,
    MCPTool,
    ServerConfig,
    Transport,
    llm_tool_name,
    mcp_tool_configs,
    mcp_tool_id,
    normalize_server_config,
    normalize_tool_schema,
    parse_mcp_servers,
    validate_server_name,
)
from .tools.base import Sampler, ToolContext, ToolExecutor
from .types import ContentItem, Message, ToolConfig, ToolResult, text_result

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MCPCallError",
    "MCPClientManager",
    "MCPConnectError",
    "MCPConnectionLost",
    "MCPServerNotFound",
    "MCPTool",
    "MCPToolExecutor",
    "Sampling",
    "ServerConfig",
    "llm_tool_name",
    "mcp_tool_configs",
    "mcp_tool_id",
    "normalize_server_config",
    "normalize_tool_schema",
    "parse_mcp_servers",
]

log = logging.getLogger(__name__)
# Server stderr is forwarded here line by line (the SDK would write it to our stderr).
stderr_log = logging.getLogger(f"{__name__}.stderr")

T = TypeVar("T")

_CLOSE_WAIT_S = 15.0  # the SDK's stdio shutdown is bounded at ~6 s (stdin close, TERM, KILL)
_MAX_TOOL_PAGES = 1000  # a server whose cursors never end must not hang list_tools
_STDERR_TAIL = 20
_PID_MARKER = "AGENTSITE_MCP_CONNECTION"  # env marker that lets us find our child in /proc
# A streamable HTTP server that lost our session (restarted, expired) answers 404; the SDK says
# "Session terminated" (C-11) unless the 404 carries a JSON-RPC body, whose wording varies by
# server: -32600 "Session not found" (Python SDK), -32001 "Session not found" (TypeScript SDK).
# Any of them means: initialize again. Codes and wording both must match, so a tool's own
# JSON-RPC error that merely mentions a session is not mistaken for a lost connection.
_SESSION_LOST = re.compile(r"\bsession\b.*\b(terminated|not found|expired)", re.IGNORECASE)
_SESSION_LOST_CODES = (mcp_types.INVALID_REQUEST, -32001)
# What a legacy HTTP+SSE server answers a streamable HTTP initialize POST with (C.3): 405 when
# the url is its GET-only SSE endpoint, 404/400 from others. The SDK reports these as generic
# JSON-RPC errors without the status, so the connection records it from the HTTP response.
_SSE_FALLBACK_STATUSES = frozenset({400, 404, 405})

try:
    _VERSION = metadata.version("agentsite")
except metadata.PackageNotFoundError:
    _VERSION = "0"


class MCPConnectError(ToolError):
    code = "mcp_connect_failed"


class MCPCallError(ToolError):
    code = "mcp_call_failed"


class MCPServerNotFound(NotFound):
    code = "mcp_server_not_found"


class MCPConnectionLost(ToolError):
    code = "mcp_connection_lost"


class _ConnectionLost(Exception):
    """The transport died under a request. ``sent``: the request may have reached the server,
    so only an idempotent one (a listing) is retried on the new connection."""

    def __init__(self, message: str, *, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent


class _Cancelled(Exception):
    """The server was edited or removed while the request was queued or in flight."""


ProgressFn = ProgressFnT  # async (progress, total, message) -> None
_CANCEL_WAIT_S = 2.0  # for the cancelled calls' notifications/cancelled to go out before closing
SamplingAnswer = mcp_types.CreateMessageResult | mcp_types.ErrorData
SAMPLING_NO_RUN = (
    "MCP server {name!r} asked for sampling during a call that no run made (a direct call has no model to ask); refused."
)
SAMPLING_UNKNOWN_RUN = (
    "MCP server {name!r} asked for sampling while tool calls of several runs (or none) were in flight; its protocol "
    "revision does not say which call asked, so it was refused."
)


@dataclass(frozen=True, eq=False)
class Sampling:
    """Who answers a server's sampling requests during one tool call: ``answer`` (awaited on the
    manager's loop) for the run ``run`` (compared with ``==`` to tell runs apart), or a refusal
    when ``answer`` is None (a call no run made)."""

    answer: Callable[[mcp_types.CreateMessageRequestParams], Awaitable[SamplingAnswer]] | None
    run: object


# The sampling of the tool call the current task makes. The newest revision's sampling requests
# ride on that call's result, so the SDK's callback runs inside the call and sees it; handshake-era
# requests arrive on the session's reader task instead (``_Connection._sampling_for``).
_call_sampling: contextvars.ContextVar[Sampling | None] = contextvars.ContextVar("mcp_call_sampling", default=None)


@dataclass(eq=False)
class _Job:
    fn: Callable[[Client], Awaitable[Any]]
    future: asyncio.Future[Any]
    sampling: Sampling | None = None  # a tool call's (None: a listing)
    sent: bool = False  # handed to the SDK: it may have reached the server
    scope: anyio.CancelScope | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class _StderrTail(asyncio.Protocol):
    """Reads a stdio child's stderr: forwards it to logging and keeps the last lines for
    connect errors ("No module named ..." is clearer than "Connection closed")."""

    def __init__(self, server: str, secrets: Iterable[str] = ()) -> None:
        self.server = server
        self.lines: deque[str] = deque(maxlen=_STDERR_TAIL)
        self._buffer = b""
        # The child's own env values are masked here, before any logging: a child that prints its
        # token may do so before the registry row (and so the site-wide scrubber) knows the value.
        self._secrets = sorted({v for v in secrets if len(v) >= 4}, key=len, reverse=True)

    def data_received(self, data: bytes) -> None:
        *lines, rest = (self._buffer + data).split(b"\n")
        self._buffer = rest[-8192:]
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            for secret in self._secrets:
                line = line.replace(secret, "…")
            if line:
                self.lines.append(line)
                stderr_log.info("[%s] %s", self.server, line)


class _Connection:
    """One connection to one server, owned by the task ``_run`` on the manager's loop."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        secrets: list[str],
        on_tools_changed: Callable[[], None],
        max_message_bytes: int,
    ) -> None:
        self.name = name
        self.max_message_bytes = max_message_bytes
        self.config = config  # expanded: never log it
        self.secrets = secrets  # resolved ${VAR} values, masked in every message we produce
        self.on_tools_changed = on_tools_changed
        self.settled = asyncio.Event()  # set once connected, or once connecting failed
        self.connected = False
        self.closed = False
        self.error: str | None = None
        self.pid: int | None = None
        self.opened = False  # ever connected (``connected`` is reset when the connection ends)
        self.http_status: int | None = None  # first error status of a POST before connecting
        self.lost = False  # a request saw the transport die: start no more on it
        self.protocol_version: str | None = None
        self._marker = uuid.uuid4().hex
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._pending: set[_Job] = set()
        self._scope = anyio.CancelScope()  # cancelled by close(); anyio cancellation keeps the SDK's shields working
        self._stderr: _StderrTail | None = None
        self._listen_scope = anyio.CancelScope()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"mcp:{name}")

    async def _run(self) -> None:
        try:
            with self._scope:
                async with contextlib.AsyncExitStack() as stack:
                    client = await stack.enter_async_context(await self._client(stack))
                    self.connected = self.opened = True
                    self.protocol_version = client.protocol_version
                    self.pid = _find_child(self._marker) if self.config.transport == "stdio" else None
                    self.settled.set()
                    async with anyio.create_task_group() as tg:
                        if _listens_for_tools(client):
                            tg.start_soon(self._listen, client)
                        while not self.lost:
                            job = await self._queue.get()
                            if self.lost:  # stays queued: retried on the next connection
                                self._queue.put_nowait(job)
                                break
                            tg.start_soon(self._run_job, client, job)
                        self._listen_scope.cancel()
                    raise _ConnectionLost(self.error or "connection lost")
        except Exception as exc:  # noqa: BLE001 - whatever broke the transport ends this connection
            self.error = self._describe(exc)
            if not self.opened and self.http_status is not None:
                self.error = f"the server answered HTTP {self.http_status} to streamable HTTP ({self.error})"
                if self.http_status in _SSE_FALLBACK_STATUSES and not self.config.transport_inferred:
                    self.error += '; if it is a legacy SSE server, configure it with "type": "sse"'
            log.warning("MCP server %r: connection %s: %s", self.name, "lost" if self.connected else "failed", self.error)
        finally:
            self.closed = True
            self.connected = False
            self.settled.set()
            while not self._queue.empty():
                self._pending.add(self._queue.get_nowait())
            for job in self._pending:
                if not job.future.done():
                    job.future.set_exception(_ConnectionLost(self.error or "connection closed", sent=job.sent))

    async def _client(self, stack: contextlib.AsyncExitStack) -> Client:
        cfg = self.config
        limit = self.max_message_bytes
        if cfg.transport == "stdio":
            # C-13: the child gets only the SDK's safe default env (HOME, PATH, ...) plus ``env``.
            # PATH is passed explicitly so a command like "uvx" resolves as it does for us.
            env = {"PATH": os.environ.get("PATH", os.defpath), **cfg.env, _PID_MARKER: self._marker}
            params = StdioServerParameters(command=cfg.command or "", args=list(cfg.args), env=env, cwd=cfg.cwd)
            transport: Any = mcp_transports.stdio_client(params, await self._stderr_pipe(stack), limit)
        elif cfg.transport == "sse":
            transport = mcp_transports.sse_client(
                cfg.url or "", dict(cfg.headers), timeout=cfg.connect_timeout_s, sse_read_timeout=300.0, limit=limit
            )
        else:
            # 300 s between bytes of a stream, as the SDK's default client.
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=dict(cfg.headers),
                    timeout=httpx2.Timeout(cfg.connect_timeout_s, read=300.0),
                    event_hooks={"response": [self._record_status]},
                    transport=mcp_transports.CappedTransport(limit),
                )
            )
            transport = streamable_http_client(cfg.url or "", http_client=http, max_sse_event_size=limit)
        # mode="auto": the SDK offers its newest revision first and falls back to the initialize
        # handshake, so newest-only servers connect too. Handshake-era sessions receive
        # notifications/tools/list_changed through message_handler; newest-revision ones through
        # a listen stream (_listen). The client's read timeout bounds the handshake and listings
        # (connect_timeout_s); each call passes its own (timeout_s). cache=None: the manager
        # caches tool lists itself (C-6).
        # sampling_callback also declares the capability: only to servers staff opted in.
        return Client(
            transport,
            mode="auto",
            message_handler=self._on_message,
            sampling_callback=self._sample if cfg.sampling else None,
            read_timeout_seconds=cfg.connect_timeout_s,
            cache=None,
            client_info=mcp_types.Implementation(name="agentsite", version=_VERSION),
        )

    async def _listen(self, client: Client) -> None:
        """Newest revision: tool list changes arrive on a subscriptions/listen stream."""
        try:
            with self._listen_scope:
                await self._listen_events(client)
        except Exception as exc:  # noqa: BLE001 - without it the list is re-read on reconnect only
            log.info("MCP server %r: listening for tool list changes ended: %s", self.name, self._describe(exc))

    async def _listen_events(self, client: Client) -> None:
        async with client.listen(tools_list_changed=True) as events:
            async for _event in events:
                self.on_tools_changed()

    async def _record_status(self, response: httpx2.Response) -> None:
        # The initialize POST's status tells a legacy SSE server apart (see _SSE_FALLBACK_STATUSES).
        status = response.status_code
        if not self.opened and self.http_status is None and response.request.method == "POST" and status >= 400:
            self.http_status = status

    @property
    def may_fall_back(self) -> bool:
        """Connecting failed the way a legacy SSE server fails a streamable HTTP client, and the
        transport was only inferred from the url."""
        cfg = self.config
        return (
            not self.opened
            and cfg.transport == "streamable_http"
            and cfg.transport_inferred
            and self.http_status in _SSE_FALLBACK_STATUSES
        )

    async def _stderr_pipe(self, stack: contextlib.AsyncExitStack) -> Any:
        read_fd, write_fd = os.pipe()
        tail = self._stderr = _StderrTail(self.name, self.config.env.values())
        reader, _ = await asyncio.get_running_loop().connect_read_pipe(lambda: tail, os.fdopen(read_fd, "rb", 0))
        stack.callback(reader.close)
        errlog = os.fdopen(write_fd, "w")
        # Our copy of the write end is closed once the connection ends; the child keeps its own.
        stack.callback(errlog.close)
        return errlog

    async def _run_job(self, client: Client, job: _Job) -> None:
        future = job.future
        if future.done():  # the caller gave up while queued
            return
        # The transport ended, or the stdio child died and its end of file is not read yet, before
        # this request went out: it never reached the server, so it is retried on a new connection.
        if _closed(client) or (self.pid is not None and not _alive(self.pid)):
            self.lost = True
            future.set_exception(_ConnectionLost(self.error or "connection closed"))
            return
        # A caller that gives up cancels the request: the SDK then sends notifications/cancelled.
        with anyio.CancelScope() as scope:
            job.scope, job.sent = scope, True
            future.add_done_callback(lambda f: scope.cancel() if f.cancelled() else None)
            try:
                value = await job.fn(client)
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                lost = _is_connection_loss(exc, self.config.transport)
                self.lost = self.lost or lost
                if not future.done():
                    future.set_exception(_ConnectionLost(self._describe(exc), sent=True) if lost else exc)
            else:
                if not future.done():
                    future.set_result(value)
            finally:
                job.finished.set()

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            # Only drop the cache: re-listing from inside the session's receive path would wait
            # on the very loop that delivers the answer. The next list_tools() fetches anew.
            self.on_tools_changed()
        elif isinstance(message, Exception):
            log.debug("MCP server %r: transport reported %s", self.name, type(message).__name__)

    async def _sample(self, context: ClientRequestContext, params: mcp_types.CreateMessageRequestParams) -> SamplingAnswer:
        sampling = self._sampling_for()
        if sampling is None:
            return _refusal(SAMPLING_UNKNOWN_RUN.format(name=self.name))
        if sampling.answer is None:
            return _refusal(SAMPLING_NO_RUN.format(name=self.name))
        return await sampling.answer(params)

    def _sampling_for(self) -> Sampling | None:
        """The call that asked: the one this task runs, else (handshake era) the only run with
        calls in flight on this connection."""
        own = _call_sampling.get()
        if own is not None:
            return own
        calls = [job.sampling for job in self._pending if job.sent and not job.future.done() and job.sampling]
        runs = {sampling.run for sampling in calls}
        return calls[0] if len(runs) == 1 else None

    async def submit(self, fn: Callable[[Client], Awaitable[T]], sampling: Sampling | None = None) -> T:
        if self.closed:
            raise _ConnectionLost(self.error or "connection closed")
        job = _Job(fn, asyncio.get_running_loop().create_future(), sampling)
        self._pending.add(job)
        self._queue.put_nowait(job)
        try:
            return await job.future
        finally:
            self._pending.discard(job)

    async def cancel_all(self, reason: str) -> None:
        """Answer every queued and in-flight request ``_Cancelled``; the ones sent are cancelled
        through the SDK (notifications/cancelled), given a moment to go out."""
        started = []
        for job in list(self._pending):
            if not job.future.done():
                job.future.set_exception(_Cancelled(reason))
            if job.scope is not None:
                job.scope.cancel()
                started.append(job.finished.wait())
        if started:
            await asyncio.wait([asyncio.ensure_future(w) for w in started], timeout=_CANCEL_WAIT_S)

    async def close(self, reason: str | None = None) -> None:
        if reason is not None:
            await self.cancel_all(reason)
        self._scope.cancel()
        await asyncio.wait({self.task}, timeout=_CLOSE_WAIT_S)

    def _describe(self, exc: BaseException) -> str:
        messages = list(dict.fromkeys(_leaf_message(leaf) for leaf in _leaves(exc)))
        text = "; ".join(messages)
        if not self.connected and self._stderr and self._stderr.lines:
            text += "\nserver stderr (last lines):\n" + "\n".join(list(self._stderr.lines)[-5:])
        for secret in self.secrets:  # e.g. an HTTP error quoting a url with a token in it
            text = text.replace(secret, "***")
        return text


@dataclass(eq=False)
class _Server:
    config: ServerConfig  # as configured, ${VAR}s unresolved
    lookup: Lookup
    conn: _Connection | None = None
    tools: tuple[MCPTool, ...] | None = None
    tools_generation: int = 0  # bumped on list_changed so an in-flight fetch can't store stale tools
    error: str | None = None
    # The transport that worked for an inferred url (C.8); a new _Server per config resets it.
    transport: Transport | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def invalidate_tools(self) -> None:
        self.tools = None
        self.tools_generation += 1

    def expanded(self) -> ServerConfig:
        """The config to connect with: ``${VAR}``s resolved, a detected transport applied."""
        return _with_transport(self.config.expand(self.lookup), self.transport)

    def secrets(self) -> list[str]:
        """The values its ${VAR}s resolve to now (short ones would mask too much to be useful)."""
        values = (self.lookup(name) for name in self.config.referenced_vars())
        return [value for value in values if value and len(value) >= 4]


class MCPClientManager:
    """Process-wide singleton: ``MCPClientManager()`` always returns the same instance.

    Sync methods may be called from any thread except the manager's own loop thread; their
    ``a``-prefixed twins from any event loop. ``configure`` does no I/O; connections open on
    first use or on ``connect``.
    """

    _instance: MCPClientManager | None = None
    _instance_lock = threading.Lock()

    def __new__(cls) -> MCPClientManager:
        with cls._instance_lock:
            if cls._instance is None:
                instance = super().__new__(cls)
                instance._init()
                cls._instance = instance
            return cls._instance

    def _init(self) -> None:
        self._servers: dict[str, _Server] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._atexit = False
        self._closing = False  # set by shutdown so a call racing it can't open a new connection
        self.max_message_bytes = 100 * 1024 * 1024  # the server sets AGENTSITE_MCP_MAX_MESSAGE_MB
        # Called (in a worker thread, not on the manager's loop) with a server's name when it
        # announces that its tools changed; the server re-syncs its registry from it.
        self.on_tools_changed: Callable[[str], None] | None = None

    # ---- the loop thread -----------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._pid != os.getpid():
                # Forked (pre-fork servers): the parent's thread and connections are not ours.
                self._pid, self._loop, self._thread = os.getpid(), None, None
                for server in self._servers.values():
                    server.conn, server.lock = None, asyncio.Lock()
            if self._loop is None:
                _large_blocks_mapped()
                self._closing = False
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="mcp-client-manager", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                if not self._atexit:
                    atexit.register(self.shutdown)
                    self._atexit = True
            return self._loop

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._ensure_loop()
        if self._thread is threading.current_thread():
            coro.close()
            raise RuntimeError("Use the async MCPClientManager methods on the manager's own loop.")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def _async(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._ensure_loop()
        if asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    # ---- public API ----------------------------------------------------------------------

    def configure(self, name: str, config: Mapping[str, Any] | ServerConfig, *, lookup: Lookup | None = None) -> ServerConfig:
        """Set a server's config (any ``mcpServers`` dialect). A changed config, or changed
        values of its ``${VAR}``s, drops the open connection; an identical one keeps it, so
        callers may re-apply configs freely. ``lookup`` resolves ``${VAR}`` (default os.environ)."""
        cfg = normalize_server_config(config)
        self._sync(self._configure(validate_server_name(name), cfg, lookup or os.environ.get))
        return cfg

    async def aconfigure(
        self, name: str, config: Mapping[str, Any] | ServerConfig, *, lookup: Lookup | None = None
    ) -> ServerConfig:
        cfg = normalize_server_config(config)
        await self._async(self._configure(validate_server_name(name), cfg, lookup or os.environ.get))
        return cfg

    def remove(self, name: str) -> None:
        """Forget a server and close its connection (no error if unknown)."""
        self._sync(self._remove(name))

    async def aremove(self, name: str) -> None:
        await self._async(self._remove(name))

    def list_tools(self, name: str, refresh: bool = False) -> list[MCPTool]:
        """All the server's tools (every page), cached until list_changed or ``refresh``."""
        return self._sync(self._list_tools(name, refresh))

    async def alist_tools(self, name: str, refresh: bool = False) -> list[MCPTool]:
        return await self._async(self._list_tools(name, refresh))

    def call_tool(
        self, name: str, tool: str, arguments: Mapping[str, Any] | None = None, timeout_s: float | None = None
    ) -> ToolResult:
        """Call a tool. Tool failures, JSON-RPC errors and timeouts come back as
        ``is_error=True`` results; only an unreachable server raises (MCPConnectError /
        MCPCallError)."""
        return self._sync(self._call_tool(name, tool, arguments or {}, timeout_s, None, None))

    async def acall_tool(
        self,
        name: str,
        tool: str,
        arguments: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        progress: ProgressFn | None = None,
        sampling: Sampling | None = None,
    ) -> ToolResult:
        """``progress`` is awaited on the manager's loop for each notifications/progress;
        ``sampling`` answers the server's sampling requests during the call (default: refused)."""
        return await self._async(self._call_tool(name, tool, arguments or {}, timeout_s, progress, sampling))

    def connect(self, name: str) -> list[MCPTool]:
        """Connect now (if not connected) and re-list the tools; MCPConnectError on failure."""
        return self._sync(self._connect(name))

    async def aconnect(self, name: str) -> list[MCPTool]:
        return await self._async(self._connect(name))

    def connect_many(self, names: list[str]) -> dict[str, list[MCPTool] | DomainError]:
        """``connect`` several servers at once: the time of the slowest, not the sum."""
        return self._sync(self._connect_many(names))

    def status(self, name: str) -> dict[str, Any]:
        """``{"status": "connected"|"disconnected"|"error", "error": str|None, "pid": int|None}``."""
        server = self._server(name)
        conn = server.conn
        if conn is not None and conn.connected and (conn.pid is None or _alive(conn.pid)):
            return {"status": "connected", "error": None, "pid": conn.pid}
        if server.error:
            return {"status": "error", "error": server.error, "pid": None}
        return {"status": "disconnected", "error": None, "pid": None}

    async def astatus(self, name: str) -> dict[str, Any]:
        return self.status(name)

    def servers(self) -> list[str]:
        """Names of the configured servers."""
        return sorted(self._servers)

    async def aservers(self) -> list[str]:
        return self.servers()

    def shutdown(self) -> None:
        """Close every connection (stdio children terminated and reaped) and stop the loop
        thread. Configs are kept: the next use starts afresh. Registered with atexit."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or self._pid != os.getpid():
            return
        if thread is threading.current_thread():
            raise RuntimeError("MCPClientManager.shutdown() cannot run on the manager's own loop.")
        try:
            asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(timeout=_CLOSE_WAIT_S + 5)
        except Exception:
            log.exception("MCP: closing connections failed")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()

    async def ashutdown(self) -> None:
        await asyncio.to_thread(self.shutdown)

    # ---- on the loop ---------------------------------------------------------------------

    def _server(self, name: str) -> _Server:
        try:
            return self._servers[name]
        except KeyError:
            raise MCPServerNotFound(f"No MCP server named {name!r} is configured.", detail={"server": name}) from None

    async def _configure(self, name: str, config: ServerConfig, lookup: Lookup) -> None:
        current = self._servers.get(name)
        if current is not None and current.config == config:
            # Compare what the connection was opened with, not the lookup object: callers may
            # pass a fresh lookup each time, and only a changed value should cost a reconnect.
            current.lookup = lookup
            conn = current.conn
            if conn is None or conn.closed:
                return
            expanded = _expanded_or_none(config, lookup)
            pinned = current.transport  # compare past a detected transport (C.8 fallback)
            if expanded is not None and _with_transport(expanded, pinned) == _with_transport(conn.config, pinned):
                return
        self._servers[name] = _Server(config=config, lookup=lookup)
        if current is not None and current.conn is not None:
            await current.conn.close(f"MCP server {name!r} was reconfigured")

    async def _remove(self, name: str) -> None:
        server = self._servers.pop(name, None)
        if server is not None and server.conn is not None:
            await server.conn.close(f"MCP server {name!r} was removed")

    async def _close_all(self) -> None:
        self._closing = True
        conns = [s.conn for s in self._servers.values() if s.conn is not None]
        for server in self._servers.values():
            server.conn, server.lock = None, asyncio.Lock()
        await asyncio.gather(*(conn.close("the MCP client manager is shutting down") for conn in conns))
        # Callers still waiting would hang once the loop stops: cancel them now.
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=5)

    async def _connection(self, server: _Server, name: str) -> _Connection:
        async with server.lock:
            conn = server.conn
            if conn is None or conn.closed:
                if server.config.disabled:
                    raise MCPConnectError(self._connect_message(name, "it is disabled"), detail={"server": name})
                if self._closing:
                    raise MCPConnectError(self._connect_message(name, "the MCP client manager is shutting down"))
                try:
                    expanded = server.expanded()
                except DomainError as exc:
                    server.error = exc.message
                    raise MCPConnectError(self._connect_message(name, exc.message), detail={"server": name}) from None
                self._still_configured(server, name)
                conn = await self._open(server, name, expanded)
                if self._servers.get(name) is not server:
                    await conn.close()
                    self._still_configured(server, name)
            await conn.settled.wait()
        if not conn.connected:
            server.error = conn.error or "connection closed"
            raise MCPConnectError(self._connect_message(name, server.error), detail={"server": name})
        server.error = None
        return conn

    def _still_configured(self, server: _Server, name: str) -> None:
        """A caller that waited for the lock while the server was removed or replaced must not
        open a connection nobody would ever close (its child would outlive the server). Nothing
        was sent: ``_with_connection`` tries once more with what is configured now."""
        if self._servers.get(name) is not server:
            raise _ConnectionLost(f"MCP server {name!r} was removed or reconfigured meanwhile")

    async def _open(self, server: _Server, name: str, expanded: ServerConfig) -> _Connection:
        """Open a connection; an inferred streamable HTTP that the server refuses with
        400/404/405 is retried once as legacy SSE. Runs under ``server.lock``."""
        conn = server.conn = _Connection(
            name, expanded, server.secrets(), self._tools_changed(name, server), self.max_message_bytes
        )
        server.invalidate_tools()  # a new process may offer other tools
        await conn.settled.wait()
        if conn.may_fall_back:
            first = conn
            log.info("MCP server %r: streamable HTTP refused (HTTP %s); trying legacy SSE", name, first.http_status)
            conn = server.conn = _Connection(
                name,
                _with_transport(expanded, "sse"),
                server.secrets(),
                self._tools_changed(name, server),
                self.max_message_bytes,
            )
            server.invalidate_tools()
            await conn.settled.wait()
            if not conn.opened:
                conn.error = f"{first.error}; then legacy SSE failed: {conn.error}"
        if server.config.transport_inferred:
            # Remember what works; after a failure detect afresh next time (the server may have moved).
            server.transport = conn.config.transport if conn.opened else None
        return conn

    def _tools_changed(self, name: str, server: _Server) -> Callable[[], None]:
        def changed() -> None:
            server.invalidate_tools()
            hook = self.on_tools_changed
            if hook is not None and self._servers.get(name) is server:
                # Off the loop: the hook lists the tools again through this very loop.
                asyncio.get_running_loop().run_in_executor(None, hook, name)

        return changed

    @staticmethod
    def _connect_message(name: str, reason: str) -> str:
        return f"Could not connect to MCP server {name!r}: {reason}"

    async def _with_connection(
        self, name: str, fn: Callable[[Client], Awaitable[T]], *, once: bool = False, sampling: Sampling | None = None
    ) -> T:
        """Run ``fn`` on the server's connection; on a lost connection reconnect once and retry
        if ``fn`` had not been sent yet, or is idempotent (``once`` false). A sent ``once``
        request raises ``MCPConnectionLost``: it may have run, and must not run twice."""
        server = self._server(name)
        try:
            return await self._attempt(server, name, fn, sampling)
        except _ConnectionLost as exc:
            if once and exc.sent:
                server.error = str(exc)
                raise MCPConnectionLost(
                    f"The connection to MCP server {name!r} was lost during the call, which is not repeated "
                    f"(it may or may not have run): {exc}",
                    detail={"server": name},
                ) from None
            log.info("MCP server %r: connection lost (%s); reconnecting", name, exc)
        server = self._server(name)  # the same one, unless it was reconfigured meanwhile
        try:
            return await self._attempt(server, name, fn, sampling)
        except _ConnectionLost as exc:
            server.error = str(exc)
            raise MCPCallError(
                f"MCP server {name!r} dropped the connection again after a reconnect: {server.error}",
                detail={"server": name},
            ) from None

    async def _attempt(
        self, server: _Server, name: str, fn: Callable[[Client], Awaitable[T]], sampling: Sampling | None
    ) -> T:
        conn = await self._connection(server, name)
        try:
            return await conn.submit(fn, sampling)
        except _ConnectionLost:
            # Many callers may see the same loss; the first detaches the connection, all wait
            # for it to close, and the lock in _connection lets only one of them reopen it.
            if server.conn is conn:
                server.conn = None
            await conn.close()
            raise

    async def _list_tools(self, name: str, refresh: bool) -> list[MCPTool]:
        server = self._server(name)
        if server.tools is not None and not refresh:
            return list(server.tools)

        # Read once connected (connecting invalidates the cache): if list_changed arrives while
        # fetching, the result may be stale and is returned but not cached.
        generation = -1

        async def fetch(client: Client) -> list[Any]:
            nonlocal generation
            generation = server.tools_generation
            if client.server_capabilities.tools is None:
                return []  # a resources/prompts-only server
            tools: list[Any] = []
            cursor: str | None = None
            for _ in range(_MAX_TOOL_PAGES):
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                if not (cursor := page.next_cursor):
                    break
            return tools

        try:
            raw = await self._with_connection(name, fetch)
        except (MCPError, RuntimeError, ValidationError) as exc:
            raise MCPCallError(f"Listing the tools of MCP server {name!r} failed: {exc}", detail={"server": name}) from None
        tools = tuple(
            MCPTool(
                name=t.name,
                description=t.description or "",
                input_schema=t.input_schema,
                title=t.title or (t.annotations.title if t.annotations else None),
                task_required=t.execution is not None and t.execution.task_support == "required",
            )
            for t in raw
        )
        if generation == server.tools_generation:
            server.tools = tools
        return list(tools)

    async def _call_tool(
        self,
        name: str,
        tool: str,
        arguments: Mapping[str, Any],
        timeout_s: float | None,
        progress: ProgressFn | None,
        sampling: Sampling | None,
    ) -> ToolResult:
        server = self._server(name)
        tool_id = mcp_tool_id(name, tool)
        timeout = timeout_s or server.config.timeout_s  # C-4: every call has a timeout
        sampling = sampling or Sampling(None, object())  # a call of its own, that no run made

        async def call(client: Client) -> Any:
            _call_sampling.set(sampling)  # in the job's own task: its context goes nowhere else
            return await client.call_tool(tool, dict(arguments), read_timeout_seconds=timeout, progress_callback=progress)

        try:
            result = await self._with_connection(name, call, once=True, sampling=sampling)
        except MCPConnectionLost as exc:
            return text_result(tool_id, f"{exc.code}: {exc.message}", is_error=True)
        except _Cancelled as exc:
            return text_result(tool_id, f"cancelled: {exc}; the call was cancelled.", is_error=True)
        except MCPError as exc:  # C-8: a protocol error is a tool error for the model, not a crash
            if _too_large(exc):
                limit = f"{self.max_message_bytes / 1024 / 1024:g} MB"
                return text_result(
                    tool_id,
                    f"mcp_message_too_large: the result of {tool!r} from MCP server {name!r} is larger than the "
                    f"{limit} limit per MCP message (AGENTSITE_MCP_MAX_MESSAGE_MB).",
                    is_error=True,
                )
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                return text_result(tool_id, f"Tool {tool!r} on MCP server {name!r} timed out after {timeout:g} s.", is_error=True)
            return text_result(tool_id, f"MCP server {name!r} rejected the call to {tool!r}: {exc.message}", is_error=True)
        except (RuntimeError, ValidationError) as exc:  # e.g. structured content not matching outputSchema
            return text_result(tool_id, f"MCP server {name!r} sent an invalid result for {tool!r}: {exc}", is_error=True)
        return _tool_result(tool_id, result)

    async def _connect(self, name: str) -> list[MCPTool]:
        try:
            return await self._list_tools(name, refresh=True)
        except MCPCallError as exc:
            raise MCPConnectError(exc.message, detail=exc.detail) from None

    async def _connect_many(self, names: list[str]) -> dict[str, list[MCPTool] | DomainError]:
        async def one(name: str) -> list[MCPTool] | DomainError:
            try:
                return await self._connect(name)
            except DomainError as exc:
                return exc

        outcomes = await asyncio.gather(*(one(name) for name in names))
        return dict(zip(names, outcomes, strict=True))


class MCPToolExecutor(ToolExecutor):
    """Runs ``tool_type="mcp"`` tools through the shared manager."""

    async def execute(self, tool: ToolConfig, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        if not tool.server or not tool.remote_name:
            return text_result(tool.tool_id, f"Tool {tool.tool_id!r} has no MCP server or remote name.", is_error=True)
        report, loop = ctx.progress, asyncio.get_running_loop()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            # On the manager's loop: hand the event to the run's loop, whose queue isn't thread-safe.
            if report is not None:
                loop.call_soon_threadsafe(report, {"progress": progress, "total": total, "message": message})

        sampling = None
        if ctx.sample is not None:
            sample, server = ctx.sample, tool.server

            async def answer(params: mcp_types.CreateMessageRequestParams) -> SamplingAnswer:
                # On the manager's loop: the run's model is asked on the run's own loop.
                return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_sampled(sample, params, server), loop))

            sampling = Sampling(answer, sample)
        try:
            result = await MCPClientManager().acall_tool(
                tool.server, tool.remote_name, arguments, timeout_s=tool.timeout_s, progress=on_progress, sampling=sampling
            )
        except DomainError as exc:  # unreachable or unconfigured server: the model sees why
            return text_result(tool.tool_id, exc.message, is_error=True)
        return replace(result, tool_id=tool.tool_id)




# ---- helpers -------------------------------------------------------------------------------


def _refusal(message: str) -> mcp_types.ErrorData:
    log.info("%s", message)
    return mcp_types.ErrorData(code=mcp_types.INVALID_REQUEST, message=message)


_STOP_REASONS = {"stop": "endTurn", "length": "maxTokens"}


async def _sampled(sample: Sampler, params: mcp_types.CreateMessageRequestParams, server: str) -> SamplingAnswer:
    """A server's sampling request answered by the run's model (on the run's loop). Text only:
    agentsite declares no sampling tools, and image or audio messages are refused."""
    if params.tools or params.tool_choice:
        return _refusal(f"MCP server {server!r} asked for sampling with tools; agentsite does not offer that.")
    messages = [Message(role="system", content=params.system_prompt)] if params.system_prompt else []
    for message in params.messages:
        blocks = message.content if isinstance(message.content, list) else [message.content]
        texts = [block.text for block in blocks if isinstance(block, mcp_types.TextContent)]
        if len(texts) < len(blocks):
            kinds = ", ".join(sorted({block.type for block in blocks}))
            return _refusal(f"MCP server {server!r} asked for sampling with {kinds} content; agentsite samples text only.")
        messages.append(Message(role=message.role, content="\n".join(texts)))
    options: dict[str, Any] = {}
    if params.temperature is not None:
        options["temperature"] = params.temperature
    if params.stop_sequences:
        options["stop"] = list(params.stop_sequences)
    try:
        answer = await sample(messages, params.max_tokens, options)
    except DomainError as exc:
        return _refusal(f"MCP server {server!r} asked for sampling; the run's model failed: {exc.message}")
    return mcp_types.CreateMessageResult(
        role="assistant",
        content=mcp_types.TextContent(type="text", text=answer.text),
        model=answer.model_id,
        stop_reason=_STOP_REASONS.get(answer.finish_reason, answer.finish_reason),
    )


def _tool_result(tool_id: str, result: Any) -> ToolResult:
    """A ``CallToolResult`` in docs/api.md's shapes: MCP wire content items (camelCase)."""
    content: list[ContentItem] = [
        block.model_dump(by_alias=True, exclude_none=True, mode="json") for block in result.content
    ]
    structured = result.structured_content
    if not content and structured is not None:
        # Models read text; servers SHOULD mirror structured output as text but not all do (C-9).
        content.append({"type": "text", "text": json.dumps(structured, ensure_ascii=False)})
    return ToolResult(tool_id=tool_id, content=tuple(content), is_error=bool(result.is_error), structured=structured)


def _large_blocks_mapped() -> None:
    """Give every large block its own mapping, returned to the system when freed. glibc raises
    its mmap threshold after a large block is freed, so the next 20 MB result came from the heap,
    whose peak is never given back (RSS stayed at its peak after one large result)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD = 128 KiB, fixed
    except (OSError, AttributeError):  # not glibc: its allocator does what it does
        pass


def _too_large(exc: MCPError) -> bool:
    """A message over the limit: ours (mcp_transports), or the SDK's SSE event cap."""
    text = exc.message
    return (
        exc.code == mcp_transports.MESSAGE_TOO_LARGE
        or "(AGENTSITE_MCP_MAX_MESSAGE_MB)" in text
        or ("exceeded the" in text and "byte limit" in text)
    )


def _closed(client: Client) -> bool:
    """The session's dispatcher saw its transport end (the SDK keeps the flag private; a request
    sent now would fail without reaching the server)."""
    dispatcher = getattr(client.session, "_dispatcher", None)
    return bool(getattr(dispatcher, "_closed", False))


def _listens_for_tools(client: Client) -> bool:
    tools = client.server_capabilities.tools
    return client.protocol_version in MODERN_PROTOCOL_VERSIONS and tools is not None and bool(tools.list_changed)


def _is_connection_loss(exc: BaseException, transport: str) -> bool:
    if isinstance(exc, MCPError):
        if _too_large(exc):
            return False
        if exc.code == mcp_types.CONNECTION_CLOSED:
            return True
        return (
            transport == "streamable_http"
            and exc.code in _SESSION_LOST_CODES
            and bool(_SESSION_LOST.search(exc.message))
        )
    return isinstance(
        exc,
        (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError, httpx2.TransportError),
    )


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _leaf_message(exc: BaseException) -> str:
    if isinstance(exc, MCPError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _with_transport(config: ServerConfig, transport: Transport | None) -> ServerConfig:
    """``config`` pinned to a detected transport (no further fallback), or as is."""
    return config if transport is None else replace(config, transport=transport, transport_inferred=False)


def _expanded_or_none(config: ServerConfig, lookup: Lookup) -> ServerConfig | None:
    try:
        return config.expand(lookup)
    except DomainError:
        return None


def _find_child(marker: str) -> int | None:
    """The pid of our direct child whose environment carries ``marker`` (Linux /proc; the SDK
    does not expose the process). It runs on the manager's loop for every stdio connect, so it
    reads only our threads' children lists, not every process of the host (8 ms with 100
    processes, more on a busy host); the full scan stays for kernels without those lists."""
    me, needle = os.getpid(), f"{_PID_MARKER}={marker}".encode()
    try:
        candidates = _own_children(me)
    except OSError:
        try:
            candidates = [name for name in os.listdir("/proc") if name.isdigit()]
        except OSError:  # no /proc: not Linux
            return None
    for pid in candidates:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if int(f.read().rsplit(b")", 1)[1].split()[1]) != me:
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    return int(pid)
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not ours to read
            continue
    return None


def _own_children(pid: int) -> list[str]:
    """Pids of ``pid``'s children, from each of its threads' ``children`` list (OSError when the
    kernel has none: CONFIG_PROC_CHILDREN)."""
    tids = os.listdir(f"/proc/{pid}/task")
    out: list[str] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(f.read().decode().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            raise
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False

