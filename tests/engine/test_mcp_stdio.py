"""The shared MCP client manager over stdio: mcp-server-time and the demo server as children."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference.engine.mcp import (
    MCPClientManager,
    MCPConnectError,
    MCPServerNotFound,
    MCPToolExecutor,
    mcp_tool_configs,
)
from inference.engine.tools.base import ToolContext
from inference.engine.types import ToolConfig
from tests.mcp_servers import children, children_running
from tests.mcp_servers.fixtures import DEMO_MODULE, DEMO_STDIO

TIME = {"command": sys.executable, "args": ["-m", "mcp_server_time"]}
DEMO_NEEDLE = "--transport stdio"


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    """One stdio demo server shared by the result-shape tests."""
    manager = MCPClientManager()
    manager.configure("demo_stdio", DEMO_STDIO)
    yield "demo_stdio"
    manager.remove("demo_stdio")


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_the_seed_one_liner_works_in_process(mcp: MCPClientManager) -> None:
    assert MCPClientManager() is mcp
    mcp.configure("time", TIME)
    assert mcp.status("time") == {"status": "disconnected", "error": None, "pid": None}  # lazy

    result = mcp.call_tool("time", "get_current_time", {"timezone": "UTC"})

    assert not result.is_error
    assert result.tool_id == "time.get_current_time"
    assert result.content[0]["type"] == "text" and "UTC" in result.content[0]["text"]
    status = mcp.status("time")
    assert status["status"] == "connected"
    assert children_running("mcp_server_time") == [status["pid"]]
    assert {t.name for t in mcp.list_tools("time")} >= {"get_current_time", "convert_time"}


def test_text_results_use_mcp_content_shapes(mcp: MCPClientManager, demo: str) -> None:
    result = mcp.call_tool(demo, "echo", {"text": "héllo"})
    assert result.to_dict()["content"] == [{"type": "text", "text": "héllo"}]
    assert result.structured == {"result": "héllo"}
    assert result.is_error is False


def test_image_results_keep_base64_and_mime_type(mcp: MCPClientManager, demo: str) -> None:
    (item,) = mcp.call_tool(demo, "pixel").content
    assert item["type"] == "image" and item["mimeType"] == "image/png"
    assert item["data"].startswith("iVBORw0KGgo")


def test_structured_results_carry_structured_content(mcp: MCPClientManager, demo: str) -> None:
    result = mcp.call_tool(demo, "weather", {"city": "Paris"})
    assert result.structured == {"city": "Paris", "temp_c": 21.5}
    assert '"temp_c": 21.5' in result.content[0]["text"]


@pytest.mark.parametrize(
    ("tool", "arguments", "text"),
    [
        ("fail", {"message": "date must be in the future"}, "date must be in the future"),
        ("boom", {}, "Error executing tool boom"),
        ("no_such_tool", {}, "Unknown tool"),
        ("add", {"a": "x"}, "validation error"),
    ],
)
def test_tool_failures_are_error_results_not_exceptions(
    mcp: MCPClientManager, demo: str, tool: str, arguments: dict, text: str
) -> None:
    result = mcp.call_tool(demo, tool, arguments)
    assert result.is_error
    assert text in result.content[0]["text"]


def test_a_json_rpc_error_is_an_error_result(mcp: MCPClientManager, demo: str) -> None:
    result = mcp.call_tool(demo, "reject", {"reason": "widget id must be positive"})
    assert result.is_error
    assert "rejected the call to 'reject': widget id must be positive" in result.content[0]["text"]


def test_a_timeout_is_an_error_result_and_the_connection_survives(mcp: MCPClientManager, demo: str) -> None:
    mcp.connect(demo)
    pid = mcp.status(demo)["pid"]
    started = time.monotonic()
    result = mcp.call_tool(demo, "sleep", {"seconds": 5}, timeout_s=0.3)
    assert time.monotonic() - started < 3
    assert result.is_error and "timed out after 0.3 s" in result.content[0]["text"]
    assert mcp.call_tool(demo, "add", {"a": 2, "b": 3}).structured == {"result": 5}
    assert mcp.status(demo)["pid"] == pid


def test_progress_reporting_tools_work(mcp: MCPClientManager, demo: str) -> None:
    assert mcp.call_tool(demo, "progress", {"steps": 3}).content == ({"type": "text", "text": "done"},)


async def test_the_async_twins_work_from_another_event_loop(mcp: MCPClientManager, demo: str) -> None:
    result = await mcp.acall_tool(demo, "add", {"a": 20, "b": 22})
    assert result.structured == {"result": 42}
    assert "echo" in {t.name for t in await mcp.alist_tools(demo)}


def test_tool_lists_are_cached_and_refreshed_on_list_changed(mcp: MCPClientManager) -> None:
    mcp.configure("grower", DEMO_STDIO)
    assert "shout" not in {t.name for t in mcp.list_tools("grower")}
    assert mcp.call_tool("grower", "grow").content[0]["text"] == "grown"
    # notifications/tools/list_changed drops the cache: the next listing sees the new tool.
    assert wait_until(lambda: "shout" in {t.name for t in mcp.list_tools("grower")}, timeout=3)
    assert mcp.call_tool("grower", "shout", {"text": "hi"}).content[0]["text"] == "HI"


def test_tool_configs_come_from_the_tool_list(mcp: MCPClientManager, demo: str) -> None:
    configs = {c.tool_id: c for c in mcp_tool_configs(demo, mcp.list_tools(demo))}
    echo = configs[f"{demo}.echo"]
    assert (echo.name, echo.server, echo.remote_name, echo.tool_type) == (f"{demo}_echo", demo, "echo", "mcp")
    assert echo.parameters["properties"]["text"]["type"] == "string"


async def test_the_mcp_executor_runs_mcp_tools(mcp: MCPClientManager, demo: str) -> None:
    tool = ToolConfig(tool_id="demo.add", tool_type="mcp", name="demo_add", server=demo, remote_name="add")
    result = await MCPToolExecutor().execute(tool, {"a": 2, "b": 2}, ToolContext())
    assert (result.tool_id, result.structured, result.is_error) == ("demo.add", {"result": 4}, False)

    orphan = ToolConfig(tool_id="gone.x", tool_type="mcp", name="gone_x", server="gone", remote_name="x")
    result = await MCPToolExecutor().execute(orphan, {}, ToolContext())
    assert result.is_error and "gone" in result.content[0]["text"]


async def test_many_concurrent_callers_share_one_child_process(mcp: MCPClientManager) -> None:
    await mcp.aconfigure("time_shared", TIME)
    seen: set[int] = set()
    most = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal most
        while not done.is_set():
            pids = children_running("mcp_server_time")
            seen.update(pids)
            most = max(most, len(pids))
            time.sleep(0.005)

    def from_threads() -> list:
        with ThreadPoolExecutor(max_workers=5) as pool:
            return list(pool.map(lambda _: mcp.call_tool("time_shared", "get_current_time", {"timezone": "UTC"}), range(50)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        threaded, awaited = await asyncio.gather(
            asyncio.to_thread(from_threads),
            asyncio.gather(*(mcp.acall_tool("time_shared", "get_current_time", {"timezone": "UTC"}) for _ in range(50))),
        )
    finally:
        done.set()
        watcher.join()

    assert len(threaded) == len(awaited) == 50
    assert not any(r.is_error for r in [*threaded, *awaited])
    assert most == 1 and seen == {mcp.status("time_shared")["pid"]}


def test_a_killed_child_is_replaced_on_the_next_call(mcp: MCPClientManager) -> None:
    mcp.configure("phoenix", DEMO_STDIO)
    assert mcp.call_tool("phoenix", "echo", {"text": "a"}).content[0]["text"] == "a"
    first = mcp.status("phoenix")["pid"]

    os.kill(first, signal.SIGKILL)
    assert wait_until(lambda: first not in children())  # killed and reaped: no zombie
    assert mcp.status("phoenix")["status"] == "disconnected"

    result = mcp.call_tool("phoenix", "echo", {"text": "b"})
    assert not result.is_error and result.content[0]["text"] == "b"
    second = mcp.status("phoenix")["pid"]
    assert second not in (None, first)
    assert [pid for pid in children_running(DEMO_NEEDLE) if pid in (first, second)] == [second]


def test_a_server_that_cannot_start_raises_a_clear_connect_error(mcp: MCPClientManager) -> None:
    mcp.configure("broken", {"command": sys.executable, "args": ["-m", "no_such_mcp_module"]})
    with pytest.raises(MCPConnectError) as info:
        mcp.connect("broken")
    assert info.value.code == "mcp_connect_failed"
    assert "'broken'" in info.value.message and "No module named no_such_mcp_module" in info.value.message
    assert mcp.status("broken")["status"] == "error"

    mcp.configure("missing", {"command": "/nonexistent/mcp-server"})
    with pytest.raises(MCPConnectError, match="No such file"):
        mcp.call_tool("missing", "x")


def test_unknown_servers_raise_not_found(mcp: MCPClientManager) -> None:
    with pytest.raises(MCPServerNotFound):
        mcp.call_tool("never_configured", "x")
    with pytest.raises(MCPServerNotFound):
        mcp.status("never_configured")
    mcp.remove("never_configured")  # removing is idempotent


def test_env_is_expanded_at_connect_time_and_a_change_reconnects(
    mcp: MCPClientManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_TEST_TOKEN", "first-token")
    monkeypatch.setenv("MCP_TEST_NOT_PASSED", "1")
    config = {**DEMO_STDIO, "env": {"DEMO_TOKEN": "${MCP_TEST_TOKEN}", "DEMO_MODE": "${MCP_TEST_MODE:-plain}"}}
    mcp.configure("envy", config)
    mcp.connect("envy")
    pid = mcp.status("envy")["pid"]
    environ = child_environ(pid)
    assert environ["DEMO_TOKEN"] == "first-token" and environ["DEMO_MODE"] == "plain"
    assert "PATH" in environ and "MCP_TEST_NOT_PASSED" not in environ  # docs/protocols.md C-13: only the safe set + env

    mcp.configure("envy", config)  # unchanged: the connection is kept
    mcp.configure("envy", config, lookup=lambda key: os.environ.get(key))  # same values, other lookup
    assert mcp.status("envy")["pid"] == pid

    monkeypatch.setenv("MCP_TEST_TOKEN", "second-token")
    mcp.configure("envy", config)  # same config, new value: reconnect with it
    assert mcp.status("envy")["status"] == "disconnected"
    mcp.connect("envy")
    assert child_environ(mcp.status("envy")["pid"])["DEMO_TOKEN"] == "second-token"
    assert pid not in children()


def test_a_new_config_or_a_removal_stops_the_old_child(mcp: MCPClientManager) -> None:
    mcp.configure("moving", DEMO_STDIO)
    mcp.connect("moving")
    first = mcp.status("moving")["pid"]
    mcp.configure("moving", {**DEMO_STDIO, "env": {"DEMO_FLAVOUR": "new"}})
    assert first not in children()
    mcp.connect("moving")
    second = mcp.status("moving")["pid"]
    mcp.remove("moving")
    assert second not in children()
    assert "moving" not in mcp.servers()


def test_shutdown_closes_every_connection_and_leaves_no_children(mcp: MCPClientManager) -> None:
    mcp.configure("s_time", TIME)
    mcp.configure("s_demo", DEMO_STDIO)
    mcp.connect("s_time")
    mcp.connect("s_demo")
    pids = {mcp.status("s_time")["pid"], mcp.status("s_demo")["pid"]}
    assert None not in pids and pids <= set(children())

    mcp.shutdown()

    assert not pids & set(children())  # terminated and reaped
    assert mcp.status("s_time")["status"] == "disconnected"
    # The manager restarts lazily after a shutdown.
    assert not mcp.call_tool("s_time", "get_current_time", {"timezone": "UTC"}).is_error


def child_environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [item.decode().split("=", 1) for item in f.read().split(b"\0") if b"=" in item]
    return dict(pairs)


def test_a_removal_while_callers_wait_to_connect_leaves_no_child_behind(mcp: MCPClientManager) -> None:
    slow = {**DEMO_STDIO, "args": ["-c", "import runpy, sys, time; time.sleep(1)  # slow-start\n"
                                         f"sys.argv = ['demo', '--transport', 'stdio']; runpy.run_module({DEMO_MODULE!r}, "
                                         "run_name='__main__')"]}
    mcp.configure("going", slow)
    with ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(mcp.call_tool, "going", "echo", {"text": "x"}) for _ in range(3)]
        assert wait_until(lambda: children_running("slow-start"), 5)  # the first caller is connecting
        mcp.remove("going")
        outcomes = [call.exception(timeout=30) or call.result() for call in calls]

    # every caller is refused; none opened a child for the server that is gone
    assert all(isinstance(o, MCPConnectError | MCPServerNotFound) for o in outcomes), outcomes
    assert wait_until(lambda: not children_running("slow-start"), 10)
    time.sleep(1.5)  # a late connect would have started its child by now
    assert not children_running("slow-start")
