"""The shared MCP client manager over streamable HTTP and legacy SSE (demo server subprocesses)."""

from __future__ import annotations

import time

import pytest

from inference.engine.mcp import MCPClientManager, MCPConnectError
from tests.mcp_servers import free_port, start_demo_server, stop


def tool_names(mcp: MCPClientManager, name: str) -> set[str]:
    return {t.name for t in mcp.list_tools(name)}


def test_streamable_http_is_inferred_from_a_plain_url(mcp: MCPClientManager, demo_http_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TEST_HTTP_TOKEN", "t0ken")
    cfg = mcp.configure(
        "web",
        {"url": demo_http_url, "headers": {"Authorization": "Bearer ${MCP_TEST_HTTP_TOKEN}"}},
    )
    assert cfg.transport == "streamable_http"

    assert {"echo", "weather", "pixel"} <= tool_names(mcp, "web")
    assert mcp.call_tool("web", "echo", {"text": "over http"}).content == ({"type": "text", "text": "over http"},)
    assert mcp.call_tool("web", "weather", {"city": "Oslo"}).structured == {"city": "Oslo", "temp_c": 21.5}
    assert mcp.call_tool("web", "pixel").content[0]["mimeType"] == "image/png"
    failed = mcp.call_tool("web", "fail", {"message": "nope"})
    assert failed.is_error and "nope" in failed.content[0]["text"]
    assert mcp.status("web") == {"status": "connected", "error": None, "pid": None}


def test_a_timeout_over_http_is_an_error_result(mcp: MCPClientManager, demo_http_url: str) -> None:
    mcp.configure("web_slow", {"type": "http", "url": demo_http_url})
    result = mcp.call_tool("web_slow", "sleep", {"seconds": 5}, timeout_s=0.3)
    assert result.is_error and "timed out" in result.content[0]["text"]
    assert mcp.call_tool("web_slow", "add", {"a": 1, "b": 2}).structured == {"result": 3}


def test_legacy_sse_is_inferred_from_an_sse_path(mcp: MCPClientManager, demo_sse_url: str) -> None:
    cfg = mcp.configure("old", {"url": demo_sse_url})
    assert cfg.transport == "sse"

    assert mcp.call_tool("old", "add", {"a": 2, "b": 40}).structured == {"result": 42}
    assert mcp.call_tool("old", "pixel").content[0]["type"] == "image"
    assert mcp.call_tool("old", "boom").is_error


def test_list_changed_reaches_us_over_http(mcp: MCPClientManager, demo_sse_url: str) -> None:
    mcp.configure("old_grower", {"type": "sse", "url": demo_sse_url})
    tool_names(mcp, "old_grower")  # cached now
    mcp.call_tool("old_grower", "grow")
    deadline = time.monotonic() + 3
    while "shout" not in tool_names(mcp, "old_grower") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "shout" in tool_names(mcp, "old_grower")


def test_a_restarted_http_server_is_reconnected_transparently(mcp: MCPClientManager) -> None:
    port = free_port()
    proc = start_demo_server("streamable-http", port)
    try:
        mcp.configure("flaky", {"type": "streamable-http", "url": f"http://127.0.0.1:{port}/mcp"})
        assert not mcp.call_tool("flaky", "echo", {"text": "before"}).is_error
        stop(proc)
        proc = start_demo_server("streamable-http", port)
        # The old session is unknown to the new process (404 -> "Session terminated"): one
        # reconnect, then the call goes through.
        assert mcp.call_tool("flaky", "echo", {"text": "after"}).content[0]["text"] == "after"
    finally:
        stop(proc)


def test_an_unreachable_server_raises_a_connect_error(mcp: MCPClientManager) -> None:
    port = free_port()  # nothing listens here
    mcp.configure("nowhere", {"url": f"http://127.0.0.1:{port}/mcp"})
    with pytest.raises(MCPConnectError) as info:
        mcp.connect("nowhere")
    assert "'nowhere'" in info.value.message
    status = mcp.status("nowhere")
    assert status["status"] == "error" and status["error"]


def test_secrets_in_urls_are_redacted_from_errors_and_logs(
    mcp: MCPClientManager, demo_http_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MCP_TEST_PATH_SECRET", "hunter2-secret")
    # A wrong path answers 404 before any session exists, and the error names the url.
    mcp.configure("leaky", {"type": "sse", "url": demo_http_url.replace("/mcp", "/${MCP_TEST_PATH_SECRET}/sse")})
    with pytest.raises(MCPConnectError) as info:
        mcp.connect("leaky")
    assert "hunter2-secret" not in info.value.message
    assert "hunter2-secret" not in (mcp.status("leaky")["error"] or "")
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("inference.engine.mcp"))
    assert "leaky" in ours and "hunter2-secret" not in ours

