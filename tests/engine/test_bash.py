"""The built-in bash tool: off by default, limits, scrubbed environment, bubblewrap sandbox."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from inference.engine.tools import builtins
from inference.engine import default_executors
from inference.engine.tools.base import ToolContext, ToolSettings, executor_kind
from inference.engine.tools.builtins import BashExecutor, bash_tool_config, bwrap_status

TOOL = bash_tool_config()


async def run(command: str, scratch: Path, **settings: Any):  # noqa: ANN201
    options = {"bash_enabled": True, **{k.lower(): v for k, v in settings.items()}}
    ctx = ToolContext(scratch_dir=str(scratch), settings=ToolSettings(**options))
    return await BashExecutor().execute(TOOL, {"command": command}, ctx)


def text_of(result) -> str:  # noqa: ANN001
    return result.content[0]["text"]


def test_config_shape() -> None:
    assert TOOL.tool_id == TOOL.name == "bash" and TOOL.tool_type == "builtin"
    assert TOOL.parameters["required"] == ["command"]
    assert isinstance(default_executors()[executor_kind(TOOL)], BashExecutor)


async def test_disabled_by_default(tmp_path: Path) -> None:
    result = await BashExecutor().execute(TOOL, {"command": "echo hi"}, ToolContext(scratch_dir=str(tmp_path)))
    assert result.is_error and "staff must enable" in text_of(result)
    assert list(tmp_path.iterdir()) == []


async def test_requires_a_scratch_dir() -> None:
    result = await BashExecutor().execute(TOOL, {"command": "echo hi"}, ToolContext(settings=ToolSettings(bash_enabled=True)))
    assert result.is_error and "scratch" in text_of(result)


@pytest.mark.parametrize("sandbox", [True, False])
async def test_echo_in_scratch(tmp_path: Path, sandbox: bool) -> None:
    scratch = tmp_path / "scratch"  # created on demand
    result = await run("echo hello; pwd; echo oops >&2", scratch, BASH_SANDBOX=sandbox)
    assert not result.is_error
    text = text_of(result)
    assert text.startswith("exit code: 0")
    assert f"--- stdout ---\nhello\n{scratch}" in text and "--- stderr ---\noops" in text
    assert result.structured["exit_code"] == 0
    if not sandbox:
        assert "sandbox: none (disabled by the BASH_SANDBOX setting)" in text
        assert result.structured["sandboxed"] is False


async def test_nonzero_exit_is_not_an_error(tmp_path: Path) -> None:
    result = await run("exit 3", tmp_path)
    assert not result.is_error and text_of(result).startswith("exit code: 3")


@pytest.mark.parametrize("sandbox", [True, False])
async def test_timeout_kills_the_whole_group(tmp_path: Path, sandbox: bool) -> None:
    started = time.monotonic()
    # The touch would happen in a grandchild after the timeout if the group survived.
    result = await run("(sleep 2; touch late) & sleep 30", tmp_path, BASH_TIMEOUT_S=0.5, BASH_SANDBOX=sandbox)
    assert time.monotonic() - started < 5
    assert result.is_error and "timed out after 0.5s" in text_of(result)
    assert result.structured["timed_out"] is True
    await asyncio.sleep(2.5)
    assert not (tmp_path / "late").exists()


async def test_model_timeout_cannot_exceed_the_setting(tmp_path: Path) -> None:
    ctx = ToolContext(scratch_dir=str(tmp_path), settings=ToolSettings(bash_enabled=True, bash_timeout_s=0.5))
    result = await BashExecutor().execute(TOOL, {"command": "sleep 10", "timeout_s": 60}, ctx)
    assert result.is_error and "timed out after 0.5s" in text_of(result)


async def test_output_cap_keeps_head_and_tail(tmp_path: Path) -> None:
    command = "echo START; head -c 100000 /dev/zero | tr '\\0' x; echo; echo END"
    result = await run(command, tmp_path, BASH_OUTPUT_CAP=1000)
    text = text_of(result)
    assert "START" in text and text.rstrip().endswith("END")
    assert "bytes elided" in text
    elided = int(text.split("[… ")[1].split(" bytes")[0])
    assert elided == 6 + 100_000 + 1 + 4 - 1000
    assert len(text) < 1300


async def test_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTSITE_FAKE_API_KEY", "sk-should-never-leak")
    monkeypatch.setenv("HARMLESS_LOOKING_VAR", "also-private")
    result = await run("env", tmp_path)
    text = text_of(result)
    assert "sk-should-never-leak" not in text and "also-private" not in text
    names = {line.split("=", 1)[0] for line in text.split("--- stdout ---\n")[1].splitlines() if "=" in line}
    assert {"PATH", "HOME", "LANG", "TERM"} <= names
    assert names <= {"PATH", "HOME", "LANG", "TERM", "PWD", "SHLVL", "_", "OLDPWD"}  # the rest bash sets itself
    assert f"HOME={tmp_path}" in text


def test_scrubbed_env_is_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("DATABASE_PASSWORD", "pw")
    env = builtins._scrubbed_env("/s")
    assert set(env) == {"PATH", "HOME", "LANG", "TERM"} and env["HOME"] == "/s"
    assert "sk-x" not in env.values() and "pw" not in env.values()


async def test_sandbox_fallback_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtins, "_probe_result", builtins._SandboxProbe(False, "bwrap is not installed"))
    result = await run("echo hi", tmp_path)
    assert "sandbox: none (bwrap is not installed)" in text_of(result)
    assert result.structured["sandboxed"] is False


# ---- under bubblewrap -----------------------------------------------------------------------


@pytest.fixture
async def require_bwrap() -> None:
    status = await bwrap_status()
    if not status.usable:
        pytest.skip(status.reason)


async def test_sandbox_is_used_and_reported(tmp_path: Path, require_bwrap: None) -> None:
    result = await run("echo hi", tmp_path)
    assert "sandbox: bwrap" in text_of(result) and result.structured["sandboxed"] is True


async def test_sandbox_has_no_network(tmp_path: Path, require_bwrap: None) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe = f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')\""
        unsandboxed = await run(probe, tmp_path, BASH_SANDBOX=False)
        assert "CONNECTED" in text_of(unsandboxed)  # the probe itself works
        sandboxed = await run(probe, tmp_path)
    assert "CONNECTED" not in text_of(sandboxed)
    assert sandboxed.structured["exit_code"] != 0


async def test_sandbox_root_is_read_only_scratch_writable(tmp_path: Path, require_bwrap: None) -> None:
    result = await run("touch /usr/agentsite-x; echo rc=$?; echo data > out.txt && cat out.txt", tmp_path)
    text = text_of(result)
    assert "Read-only file system" in text and "rc=1" in text
    assert not Path("/usr/agentsite-x").exists()
    assert (tmp_path / "out.txt").read_text() == "data\n"


async def test_sandbox_tmp_is_private(tmp_path: Path, require_bwrap: None) -> None:
    marker = Path("/tmp") / f"agentsite-bash-{tmp_path.name}"
    await run(f"echo x > {marker}", tmp_path)
    assert not marker.exists()
