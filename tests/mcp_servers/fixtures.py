"""The MCP fixtures of the whole suite (imported by tests/conftest.py): the demo server over
streamable HTTP and legacy SSE, stdio configs for the demo and time servers, and the shared
client manager, cleaned up after each test.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from inference.engine.mcp import MCPClientManager
from tests.mcp_servers import DEMO_MODULE, REPO, free_port, start_demo_server, start_demo_sse_at, stop

# stdio configs, as POST /v1/tools/mcp or MCPClientManager.configure take them.
DEMO_STDIO = {"command": sys.executable, "args": ["-m", DEMO_MODULE, "--transport", "stdio"], "cwd": str(REPO)}
TIME_STDIO = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}


@pytest.fixture
def mcp() -> Iterator[MCPClientManager]:
    """The process's MCP client manager; servers configured during the test (directly or through
    the API) are removed after it, those configured before (module fixtures) are kept."""
    manager = MCPClientManager()
    before = set(manager.servers())
    yield manager
    for name in set(manager.servers()) - before:
        manager.remove(name)


def _serving(start: Callable[[int], subprocess.Popen[bytes]], path: str) -> Iterator[str]:
    """Start a server on a free port, yield its URL at ``path``, stop it afterwards."""
    port = free_port()
    proc = start(port)
    try:
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def demo_http_url() -> Iterator[str]:
    """The demo server over streamable HTTP, one process per test module."""
    yield from _serving(lambda port: start_demo_server("streamable-http", port), "/mcp")


@pytest.fixture(scope="module")
def demo_sse_url() -> Iterator[str]:
    """The demo server over legacy SSE at its usual ``/sse``, one process per test module."""
    yield from _serving(lambda port: start_demo_server("sse", port), "/sse")


@pytest.fixture(scope="module")
def demo_sse_events_url() -> Iterator[str]:
    """The demo server over legacy SSE at ``/events``: a path that does not end in ``/sse``, so only
    the transport fallback (docs/protocols.md C.8) finds it."""
    yield from _serving(lambda port: start_demo_sse_at("/events", port), "/events")
