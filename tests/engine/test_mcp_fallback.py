"""A url without a transport type: streamable HTTP first, legacy SSE on 400/404/405 (docs/protocols.md C.8).

The legacy server is the demo server's own SDK SSE app (``MCPServer.sse_app``) served at
``/events``, a path that does not end in ``/sse``, so only the fallback can find it: a
streamable HTTP ``initialize`` POST to its GET-only SSE route is answered 405.
"""

from __future__ import annotations

from typing import Any

import pytest

from inference.engine import mcp as mcp_module
from inference.engine.mcp import MCPClientManager, MCPConnectError, normalize_server_config


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The transport of every connection the manager opens, in order."""
    seen: list[str] = []

    class Spy(mcp_module._Connection):
        def __init__(self, name: str, config: Any, *args: Any) -> None:
            seen.append(config.transport)
            super().__init__(name, config, *args)

    monkeypatch.setattr(mcp_module, "_Connection", Spy)
    return seen


def test_only_a_url_without_a_type_is_inferred() -> None:
    inferred = normalize_server_config({"url": "http://h:9001/events"})
    assert (inferred.transport, inferred.transport_inferred) == ("streamable_http", True)
    assert normalize_server_config({"serverUrl": "http://h:9001/sse"}).transport_inferred
    for explicit in ({"type": "http", "url": "http://h/events"}, {"transport": "sse", "url": "http://h/events"}):
        assert not normalize_server_config(explicit).transport_inferred
    assert not normalize_server_config({"command": "uvx"}).transport_inferred


def test_a_legacy_sse_server_without_a_type_is_found_by_fallback(
    mcp: MCPClientManager, demo_sse_events_url: str, attempts: list[str]
) -> None:
    cfg = mcp.configure("legacy", {"url": demo_sse_events_url})
    assert cfg.transport == "streamable_http" and cfg.transport_inferred

    assert {"echo", "add", "weather"} <= {t.name for t in mcp.list_tools("legacy")}
    assert mcp.call_tool("legacy", "add", {"a": 2, "b": 40}).structured == {"result": 42}
    assert mcp.call_tool("legacy", "echo", {"text": "via sse"}).content == ({"type": "text", "text": "via sse"},)
    assert mcp.status("legacy")["status"] == "connected"
    assert attempts == ["streamable_http", "sse"]

    # Re-applying the same config keeps the (SSE) connection.
    conn = mcp._servers["legacy"].conn
    mcp.configure("legacy", {"url": demo_sse_events_url})
    assert mcp._servers["legacy"].conn is conn

    # The verdict is remembered: a reconnect goes straight to SSE.
    assert conn is not None
    mcp._sync(conn.close())
    assert mcp.call_tool("legacy", "add", {"a": 1, "b": 1}).structured == {"result": 2}
    assert attempts == ["streamable_http", "sse", "sse"]


def test_an_explicit_http_type_never_falls_back(mcp: MCPClientManager, demo_sse_events_url: str, attempts: list[str]) -> None:
    mcp.configure("strict", {"type": "http", "url": demo_sse_events_url})
    with pytest.raises(MCPConnectError) as info:
        mcp.connect("strict")
    message = info.value.message
    assert "'strict'" in message and "answered HTTP 405 to streamable HTTP" in message
    assert '"type": "sse"' in message and "legacy SSE failed" not in message  # a hint, not an attempt
    assert attempts == ["streamable_http"]
    assert mcp.status("strict")["status"] == "error"


def test_a_streamable_http_server_without_a_type_needs_no_sse(
    mcp: MCPClientManager, demo_http_url: str, attempts: list[str]
) -> None:
    mcp.configure("modern", {"url": demo_http_url})
    assert mcp.call_tool("modern", "add", {"a": 20, "b": 22}).structured == {"result": 42}
    assert attempts == ["streamable_http"]


def test_when_both_transports_fail_the_error_names_both(
    mcp: MCPClientManager, demo_sse_events_url: str, attempts: list[str]
) -> None:
    mcp.configure("lost", {"url": demo_sse_events_url.replace("/events", "/nothing-here")})
    with pytest.raises(MCPConnectError) as info:
        mcp.connect("lost")
    message = info.value.message
    assert "answered HTTP 404 to streamable HTTP" in message and "then legacy SSE failed" in message
    assert '"type"' not in message
    assert attempts == ["streamable_http", "sse"]
    # A failed detection is not remembered: the next connect tries streamable HTTP again.
    with pytest.raises(MCPConnectError):
        mcp.connect("lost")
    assert attempts == ["streamable_http", "sse", "streamable_http", "sse"]
