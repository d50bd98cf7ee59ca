"""The MCP manager against real servers in production conditions (docs/mcp.md): 20 MB results
and the per-message limit on every transport, exactly-once calls across a killed connection,
cancellation reaching the server, progress, changing tool lists, every protocol revision,
separate connect and call timeouts. The SDK-built server is tests/mcp_servers/prod_server.py;
the npm reference server is ``@modelcontextprotocol/server-everything``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types
import pytest

from inference.engine.mcp import MCPClientManager, Sampling
from tests.mcp_servers import (
    EVERYTHING_BIN,
    PROD_MODULE,
    REPO,
    children,
    free_port,
    start_prod_server,
    stop,
    wait_until,
)

MB = 1024 * 1024
HTTP_MODES = {
    "http-sse": (["--transport", "streamable-http"], "/mcp"),
    "http-json": (["--transport", "streamable-http", "--json-response"], "/mcp"),
    "legacy-sse": (["--transport", "sse"], "/sse"),
    "newest-only": (["--transport", "streamable-http", "--newest-only"], "/mcp"),
}
TRANSPORTS = ["stdio", *HTTP_MODES]


@pytest.fixture(scope="module")
def count_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp-counts")


@pytest.fixture(scope="module")
def prod_urls(count_dir: Path) -> Iterator[dict[str, str]]:
    """The production fixture server over every HTTP transport, one process each per module."""
    procs, urls = [], {}
    try:
        for mode, (args, path) in HTTP_MODES.items():
            port = free_port()
            procs.append(start_prod_server(port, *args, count_dir=str(count_dir)))
            urls[mode] = f"http://127.0.0.1:{port}{path}"
        yield urls
    finally:
        for proc in procs:
            stop(proc)


def stdio_config(count_dir: Path, **extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": ["-m", PROD_MODULE], "cwd": str(REPO),
            "env": {"PROD_COUNT_DIR": str(count_dir)}, **extra}


def config_for(transport: str, count_dir: Path, urls: dict[str, str], **extra: Any) -> dict[str, Any]:
    return stdio_config(count_dir, **extra) if transport == "stdio" else {"url": urls[transport], **extra}


def count(count_dir: Path, key: str) -> list[str]:
    path = count_dir / key
    return path.read_text().split() if path.exists() else []


def text(result: Any) -> str:
    return result.content[0]["text"]


@pytest.fixture
def limit(mcp: MCPClientManager) -> Iterator[None]:
    """Restore the manager's message limit after a test that changes it."""
    before = mcp.max_message_bytes
    yield
    mcp.max_message_bytes = before


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_20_mb_result_arrives_whole_and_one_over_the_limit_is_a_tool_error(
    transport: str, mcp: MCPClientManager, count_dir: Path, prod_urls: dict[str, str], limit: None
) -> None:
    mcp.max_message_bytes = 30 * MB  # read when a connection opens
    name = f"big-{transport}"
    mcp.configure(name, config_for(transport, count_dir, prod_urls))
    result = mcp.call_tool(name, "big", {"mb": 20})
    assert not result.is_error and len(text(result)) == 20 * MB

    over = mcp.call_tool(name, "big", {"mb": 40})
    assert over.is_error and text(over).startswith("mcp_message_too_large")
    assert "30 MB" in text(over) and "AGENTSITE_MCP_MAX_MESSAGE_MB" in text(over)
    # Not a lost connection: the same connection answers the next call, and nothing ran twice.
    pid = mcp.status(name)["pid"]
    key = f"after-big-{transport}"
    assert text(mcp.call_tool(name, "counted", {"key": key})) == f"ran {key}"
    assert mcp.status(name) == {"status": "connected", "error": None, "pid": pid}
    assert count(count_dir, key) == ["ran"]


def test_calls_in_flight_when_the_child_dies_run_once_and_answer_connection_lost(
    mcp: MCPClientManager, count_dir: Path
) -> None:
    mcp.configure("crashy", stdio_config(count_dir))
    mcp.connect("crashy")
    pid = mcp.status("crashy")["pid"]
    keys = [f"crash-{i}" for i in range(12)]
    results: dict[str, Any] = {}

    def call(key: str) -> None:
        results[key] = mcp.call_tool("crashy", "counted", {"key": key, "seconds": 30})

    threads = [threading.Thread(target=call, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: all(count(count_dir, k) for k in keys))  # every call reached the server
    os.kill(pid, signal.SIGKILL)
    for thread in threads:
        thread.join(20)
    for key in keys:
        assert results[key].is_error and text(results[key]).startswith("mcp_connection_lost"), text(results[key])
        assert count(count_dir, key) == ["ran"]  # exactly once: never re-sent to the new child
    # the next call starts a new child and runs normally
    assert text(mcp.call_tool("crashy", "counted", {"key": "crash-after"})) == "ran crash-after"
    assert mcp.status("crashy")["pid"] != pid and count(count_dir, "crash-after") == ["ran"]


@pytest.mark.parametrize("transport", ["http-sse", "http-json", "legacy-sse"])
def test_calls_in_flight_when_an_http_server_dies_run_once_and_answer_connection_lost(
    transport: str, mcp: MCPClientManager, tmp_path: Path
) -> None:
    args, path = HTTP_MODES[transport]
    port = free_port()
    proc = start_prod_server(port, *args, count_dir=str(tmp_path))
    try:
        mcp.configure("dying", {"url": f"http://127.0.0.1:{port}{path}"})
        mcp.connect("dying")
        keys = [f"die-{i}" for i in range(8)]
        results: dict[str, Any] = {}

        def call(key: str) -> None:
            results[key] = mcp.call_tool("dying", "counted", {"key": key, "seconds": 30})

        threads = [threading.Thread(target=call, args=(key,)) for key in keys]
        for thread in threads:
            thread.start()
        assert wait_until(lambda: all(count(tmp_path, k) for k in keys))  # every call reached the server
        proc.kill()
        for thread in threads:
            thread.join(20)
        for key in keys:
            assert results[key].is_error and text(results[key]).startswith("mcp_connection_lost"), text(results[key])
            assert count(tmp_path, key) == ["ran"]  # exactly once: never re-sent
        # the server back on its port: the next call reconnects and runs once
        proc = start_prod_server(port, *args, count_dir=str(tmp_path))
        assert text(mcp.call_tool("dying", "counted", {"key": "die-after"})) == "ran die-after"
        assert count(tmp_path, "die-after") == ["ran"]
    finally:
        stop(proc)


def test_a_call_after_the_child_died_is_sent_to_a_new_one(mcp: MCPClientManager, count_dir: Path) -> None:
    """An unsent call is not lost with the connection: it waits for the reconnect."""
    mcp.configure("phoenix2", stdio_config(count_dir))
    mcp.connect("phoenix2")
    pid = mcp.status("phoenix2")["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: pid not in children())
    result = mcp.call_tool("phoenix2", "counted", {"key": "phoenix2"})
    assert not result.is_error and count(count_dir, "phoenix2") == ["ran"]


@pytest.mark.parametrize("how", ["removed", "reconfigured"])
def test_editing_or_removing_a_server_cancels_its_calls_on_the_server(
    how: str, mcp: MCPClientManager, count_dir: Path, prod_urls: dict[str, str]
) -> None:
    name, key = f"cancel-{how}", f"cancel-{how}"
    mcp.configure(name, {"url": prod_urls["http-sse"]})
    mcp.connect(name)
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(mcp.call_tool(name, "sleep", {"seconds": 3, "key": key})))
    thread.start()
    assert wait_until(lambda: count(count_dir, key) == ["start"])
    if how == "removed":
        mcp.remove(name)
    else:
        mcp.configure(name, {"url": prod_urls["http-sse"], "timeout_s": 77})
    thread.join(10)
    assert results[0].is_error and text(results[0]).startswith("cancelled")
    time.sleep(3.5)  # the server stopped the handler (notifications/cancelled): it never ends
    assert count(count_dir, key) == ["start"]


def test_a_caller_giving_up_cancels_the_call_on_the_server(
    mcp: MCPClientManager, count_dir: Path, prod_urls: dict[str, str]
) -> None:
    mcp.configure("giveup", {"url": prod_urls["legacy-sse"]})
    mcp.connect("giveup")

    async def give_up() -> None:
        task = asyncio.ensure_future(mcp.acall_tool("giveup", "sleep", {"seconds": 3, "key": "giveup"}))
        while count(count_dir, "giveup") != ["start"]:
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(give_up())
    time.sleep(3.5)
    assert count(count_dir, "giveup") == ["start"]
    assert not mcp.call_tool("giveup", "counted", {"key": "giveup-after"}).is_error


# Not http-json: a server answering with one JSON body has no stream to send progress on.
@pytest.mark.parametrize("transport", ["stdio", "http-sse", "legacy-sse"])
def test_progress_notifications_reach_the_caller(
    transport: str, mcp: MCPClientManager, count_dir: Path, prod_urls: dict[str, str]
) -> None:
    name = f"progress-{transport}"
    mcp.configure(name, config_for(transport, count_dir, prod_urls))
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def call() -> Any:
        return await mcp.acall_tool(name, "slow_progress", {"steps": 3, "delay": 0.05}, progress=on_progress)

    assert text(asyncio.run(call())) == "finished"
    assert seen == [(1, 3, "step 1 of 3"), (2, 3, "step 2 of 3"), (3, 3, "step 3 of 3")]


@pytest.mark.parametrize("transport", ["stdio", "newest-only", "legacy-sse"])
def test_a_changed_tool_list_updates_the_listing_and_tells_the_hook(
    transport: str, mcp: MCPClientManager, count_dir: Path, prod_urls: dict[str, str]
) -> None:
    if transport != "stdio":  # the HTTP servers are shared by the module: reshaping one is for good
        port = free_port()
        proc = start_prod_server(port, *HTTP_MODES[transport][0], count_dir=str(count_dir))
        config: dict[str, Any] = {"url": f"http://127.0.0.1:{port}{HTTP_MODES[transport][1]}"}
    else:
        proc, config = None, stdio_config(count_dir)
    heard: list[str] = []
    before, mcp.on_tools_changed = mcp.on_tools_changed, heard.append
    try:
        name = f"reshape-{transport.replace('-', '')}"
        mcp.configure(name, config)
        names = {t.name for t in mcp.list_tools(name)}
        assert "background_job" in names and "reverse" not in names
        assert text(mcp.call_tool(name, "reshape")) == "reshaped"
        assert wait_until(lambda: name in heard, timeout=5) and set(heard) == {name}
        names = {t.name for t in mcp.list_tools(name)}
        assert "reverse" in names and "background_job" not in names
    finally:
        mcp.on_tools_changed = before
        stop(proc)


def test_a_newest_revision_only_server_connects(mcp: MCPClientManager, prod_urls: dict[str, str]) -> None:
    mcp.configure("newest", {"url": prod_urls["newest-only"]})
    assert "big" in {t.name for t in mcp.connect("newest")}
    assert mcp._servers["newest"].conn.protocol_version == "2026-07-28"  # type: ignore[union-attr]
    assert text(mcp.call_tool("newest", "fs/read.v2", {"path": "a"})) == "read a"


def test_tools_that_require_tasks_are_marked(mcp: MCPClientManager, count_dir: Path) -> None:
    mcp.configure("tasks", stdio_config(count_dir))
    flagged = {t.name for t in mcp.list_tools("tasks") if t.task_required}
    # The 2026 revision drops the field; a handshake-era listing carries it (server-everything below).
    assert flagged <= {"background_job"}


def test_timeout_s_limits_calls_not_the_handshake(mcp: MCPClientManager, count_dir: Path) -> None:
    # Starting the child (Python and the SDK imported) takes longer than 0.3 s.
    mcp.configure("quick", stdio_config(count_dir, timeout_s=0.3, connect_timeout_s=30))
    assert mcp.connect("quick")
    slow = mcp.call_tool("quick", "sleep", {"seconds": 2})
    assert slow.is_error and "timed out after 0.3 s" in text(slow)
    assert not mcp.call_tool("quick", "sleep", {"seconds": 0}).is_error


def test_a_disabled_server_is_not_started(mcp: MCPClientManager, count_dir: Path) -> None:
    mcp.configure("off", stdio_config(count_dir, disabled=True))
    with pytest.raises(Exception, match="disabled"):
        mcp.connect("off")
    assert not [pid for pid, (_, cmd) in children().items() if PROD_MODULE in cmd and "off" in cmd]
    assert mcp.status("off")["status"] != "connected"


def test_env_file_is_read_when_starting(mcp: MCPClientManager, count_dir: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "server.env"
    env_file.write_text(f"# counts\nexport PROD_COUNT_DIR='{tmp_path}'\n")
    config = stdio_config(count_dir, envFile=str(env_file))
    del config["env"]
    mcp.configure("envfile", config)
    assert text(mcp.call_tool("envfile", "counted", {"key": "from-env-file"})) == "ran from-env-file"
    assert (tmp_path / "from-env-file").read_text() == "ran\n"


# ---- the npm reference server ----------------------------------------------------------------

everything = pytest.mark.skipif(
    not EVERYTHING_BIN.exists() and not os.environ.get("CI"),
    reason="npm ci in tests/mcp_servers installs @modelcontextprotocol/server-everything (.ci/run does)",
)


@everything
def test_server_everything_progress_tasks_and_images(mcp: MCPClientManager) -> None:
    mcp.configure("everything", {"command": str(EVERYTHING_BIN), "args": ["stdio"]})
    tools = {t.name: t for t in mcp.connect("everything")}
    assert tools["simulate-research-query"].task_required and not tools["echo"].task_required
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async def call() -> Any:
        args = {"duration": 1, "steps": 4}
        return await mcp.acall_tool("everything", "trigger-long-running-operation", args, progress=on_progress)

    assert "completed" in text(asyncio.run(call()))
    assert seen == [1, 2, 3, 4]
    image = mcp.call_tool("everything", "get-tiny-image")
    assert any(item["type"] == "image" for item in image.content)


@everything
def test_handshake_era_sampling_goes_to_the_one_run_in_flight_and_is_refused_with_two(mcp: MCPClientManager) -> None:
    # server-everything speaks the handshake era over stdio: its sampling request comes on its own
    mcp.configure("sampler", {"command": str(EVERYTHING_BIN), "args": ["stdio"], "sampling": True})
    mcp.connect("sampler")

    async def answer(params: mcp_types.CreateMessageRequestParams) -> mcp_types.CreateMessageResult:
        return mcp_types.CreateMessageResult(role="assistant", content=mcp_types.TextContent(type="text", text="hi"),
                                             model="run-a-model")

    def ask(run: str) -> Any:
        return mcp.acall_tool("sampler", "trigger-sampling-request", {"prompt": "p"}, sampling=Sampling(answer, run))

    async def scenario() -> tuple[Any, Any]:
        alone = await ask("run-a")
        # run b's call is in flight while run a's server asks: which call asked is unknown
        other = asyncio.ensure_future(mcp.acall_tool("sampler", "trigger-long-running-operation",
                                                     {"duration": 2, "steps": 2}, sampling=Sampling(None, "run-b")))
        await asyncio.sleep(0.5)
        both = await ask("run-a")
        await other
        return alone, both

    alone, both = asyncio.run(scenario())
    assert not alone.is_error and "run-a-model" in text(alone)
    assert both.is_error and "several runs" in text(both)
