"""The built-in bash tool: off by default, fails closed without bubblewrap, limits, scrubbed environment, sandbox."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from inference.engine import Runtime, default_executors
from inference.engine.tools import builtins
from inference.engine.tools.base import ToolContext, ToolSettings, executor_kind
from inference.engine.tools.builtins import BashExecutor, bash_tool_config, bwrap_status

TOOL = bash_tool_config()
SANDBOXED = pytest.param(False, id="bwrap")
UNSANDBOXED = pytest.param(True, id="unsandboxed")


async def run(command: str, scratch: Path, **settings: Any):
    options = {"bash_enabled": True, **{k.lower(): v for k, v in settings.items()}}
    ctx = ToolContext(scratch_dir=str(scratch), settings=ToolSettings(**options))
    return await BashExecutor().execute(TOOL, {"command": command}, ctx)


def text_of(result) -> str:
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


@pytest.mark.parametrize("unsandboxed", [SANDBOXED, UNSANDBOXED])
async def test_echo_in_scratch(tmp_path: Path, unsandboxed: bool, bwrap_unless: None) -> None:
    scratch = tmp_path / "scratch"  # created on demand
    result = await run("echo hello; pwd; echo oops >&2", scratch, BASH_UNSANDBOXED=unsandboxed)
    assert not result.is_error
    text = text_of(result)
    assert text.startswith("exit code: 0")
    assert f"--- stdout ---\nhello\n{scratch}" in text and "--- stderr ---\noops" in text
    assert result.structured["exit_code"] == 0
    assert result.structured["sandboxed"] is not unsandboxed
    if unsandboxed:
        assert "sandbox: none (unsandboxed mode is on: AGENTSITE_BASH_UNSANDBOXED)" in text
    else:
        assert "sandbox: bwrap (no network, read-only system, writable scratch)" in text


async def test_nonzero_exit_is_not_an_error(tmp_path: Path) -> None:
    result = await run("exit 3", tmp_path, BASH_UNSANDBOXED=True)
    assert not result.is_error and text_of(result).startswith("exit code: 3")


@pytest.mark.parametrize("unsandboxed", [SANDBOXED, UNSANDBOXED])
async def test_timeout_kills_the_whole_group(tmp_path: Path, unsandboxed: bool, bwrap_unless: None) -> None:
    started = time.monotonic()
    # The touch would happen in a grandchild after the timeout if the group survived.
    result = await run("(sleep 2; touch late) & sleep 30", tmp_path, BASH_TIMEOUT_S=0.5, BASH_UNSANDBOXED=unsandboxed)
    assert time.monotonic() - started < 5
    assert result.is_error and "timed out after 0.5s" in text_of(result)
    assert result.structured["timed_out"] is True
    await asyncio.sleep(2.5)
    assert not (tmp_path / "late").exists()


async def test_model_timeout_cannot_exceed_the_setting(tmp_path: Path) -> None:
    settings = ToolSettings(bash_enabled=True, bash_timeout_s=0.5, bash_unsandboxed=True)
    ctx = ToolContext(scratch_dir=str(tmp_path), settings=settings)
    result = await BashExecutor().execute(TOOL, {"command": "sleep 10", "timeout_s": 60}, ctx)
    assert result.is_error and "timed out after 0.5s" in text_of(result)


async def test_output_cap_keeps_head_and_tail(tmp_path: Path) -> None:
    command = "echo START; head -c 100000 /dev/zero | tr '\\0' x; echo; echo END"
    result = await run(command, tmp_path, BASH_OUTPUT_CAP=1000, BASH_UNSANDBOXED=True)
    text = text_of(result)
    assert "START" in text and text.rstrip().endswith("END")
    assert "bytes elided" in text
    elided = int(text.split("[… ")[1].split(" bytes")[0])
    assert elided == 6 + 100_000 + 1 + 4 - 1000
    assert len(text) < 1300


@pytest.mark.parametrize("unsandboxed", [SANDBOXED, UNSANDBOXED])
async def test_environment_is_scrubbed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unsandboxed: bool, bwrap_unless: None
) -> None:
    monkeypatch.setenv("AGENTSITE_FAKE_API_KEY", "sk-should-never-leak")
    monkeypatch.setenv("HARMLESS_LOOKING_VAR", "also-private")
    result = await run("env", tmp_path, BASH_UNSANDBOXED=unsandboxed)
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


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without bubblewrap: the lookup finds nothing (the probe's cache is set aside)."""
    monkeypatch.setattr(builtins, "BWRAP", "agentsite-no-such-bwrap")
    monkeypatch.setattr(builtins, "_probe_cache", {})


async def test_without_a_sandbox_bash_refuses_to_run(tmp_path: Path, no_bwrap: None) -> None:
    scratch = tmp_path / "scratch"
    result = await run("touch ran", scratch)
    text = text_of(result)
    assert result.is_error and result.structured == {"sandboxed": False}
    assert "no working sandbox (bubblewrap (bwrap) is not installed)" in text
    assert "install bubblewrap" in text and "AGENTSITE_BASH_UNSANDBOXED=1" in text
    assert not scratch.exists()  # nothing ran, nothing was created


async def test_unsandboxed_mode_runs_without_bwrap(tmp_path: Path, no_bwrap: None) -> None:
    result = await run("echo hi", tmp_path, BASH_UNSANDBOXED=True)
    assert not result.is_error and "hi" in text_of(result)
    assert "sandbox: none (unsandboxed mode is on" in text_of(result) and result.structured["sandboxed"] is False


async def test_unusable_bwrap_refuses_with_its_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(builtins, "BWRAP", str(fake))
    monkeypatch.setattr(builtins, "_probe_cache", {})
    result = await run("echo hi", tmp_path / "scratch")
    assert result.is_error and "installed but unusable here: bwrap: No permissions" in text_of(result)


def test_a_failed_probe_is_retried_later(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(builtins, "_probe_cache", {})
    monkeypatch.setattr(builtins, "_probe", lambda bwrap, s: calls.append(1) or builtins.SandboxProbe(False, "nope"))
    assert not builtins.probe_sandbox().usable and not builtins.probe_sandbox().usable
    assert len(calls) == 1  # remembered for a while
    monkeypatch.setattr(builtins, "_PROBE_RETRY_S", 0.0)
    builtins.probe_sandbox()
    assert len(calls) == 2  # then tried again: bubblewrap may have been installed meanwhile


# ---- under bubblewrap -----------------------------------------------------------------------


@pytest.fixture
async def require_bwrap() -> None:
    status = await bwrap_status()
    if not status.usable:
        pytest.skip(status.reason)


@pytest.fixture
async def bwrap_unless(request: pytest.FixtureRequest) -> None:
    """For tests parametrized on ``unsandboxed``: the sandboxed case needs a working bubblewrap."""
    if not request.getfixturevalue("unsandboxed"):
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
        unsandboxed = await run(probe, tmp_path, BASH_UNSANDBOXED=True)
        assert "CONNECTED" in text_of(unsandboxed)  # the probe itself works
        sandboxed = await run(probe, tmp_path)
        allowed = await run(probe, tmp_path, BASH_NETWORK=True)
    assert "CONNECTED" not in text_of(sandboxed)
    assert sandboxed.structured["exit_code"] != 0
    assert "CONNECTED" in text_of(allowed) and "sandbox: bwrap (network on" in text_of(allowed)


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


async def test_sandbox_shows_only_a_minimal_read_only_system(tmp_path: Path, require_bwrap: None) -> None:
    result = await run("ls -A /; echo ---; ls -A /etc; echo ---; ls /home /root /var /opt 2>&1; cat /etc/shadow 2>&1", tmp_path)
    root, etc, rest = text_of(result).split("--- stdout ---\n")[1].split("---\n")
    top = {Path(p).parts[1] for p in [str(tmp_path)]}  # the scratch folder's mount point
    assert set(root.split()) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr", *top}
    assert set(etc.split()) <= set(builtins._ETC_ENTRIES)
    assert "shadow" not in etc and rest.count("No such file or directory") == 5


async def test_sandbox_proc_is_its_own(tmp_path: Path, require_bwrap: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTSITE_PROC_MARKER", "marker-from-the-server")
    command = f"tr '\\0' '\\n' < /proc/1/environ; echo ---; ls /proc | grep -c '^[0-9]'; test -e /proc/{os.getpid()} && echo SEEN"
    result = await run(command, tmp_path)
    text = text_of(result).split("--- stdout ---\n")[1]
    environ, count = text.split("---\n")
    assert {line.split("=", 1)[0] for line in environ.split()} <= {"PATH", "HOME", "LANG", "TERM"}
    assert "marker-from-the-server" not in text and "SEEN" not in count
    assert int(count.split()[0]) < 10  # only the sandbox's own few processes


async def test_hidden_paths_are_masked_under_system_folders(tmp_path: Path, require_bwrap: None) -> None:
    result = await run("cat /etc/hosts; echo rc=$?", tmp_path, BASH_HIDDEN_PATHS=("/etc/hosts",))
    assert "rc=0" not in text_of(result)
    assert "rc=0" in text_of(await run("cat /etc/hosts >/dev/null; echo rc=$?", tmp_path))


async def test_limits_are_set_in_the_sandbox(tmp_path: Path, require_bwrap: None) -> None:
    limits = "BASH_CPU_S=7, BASH_MEMORY_MB=300, BASH_MAX_PROCS=33, BASH_FILE_MB=5"
    options = {k: int(v) for k, v in (item.split("=") for item in limits.split(", "))}
    result = await run("ulimit -t; ulimit -v; ulimit -u; ulimit -f", tmp_path, **options)
    assert text_of(result).split("--- stdout ---\n")[1].split() == ["7", str(300 * 1024), "33", str(5 * 1024)]
    zero = await run("ulimit -t; ulimit -f", tmp_path, BASH_CPU_S=0, BASH_FILE_MB=0)
    assert text_of(zero).split("--- stdout ---\n")[1].split() == ["unlimited", "unlimited"]


async def test_unsandboxed_limits_leave_out_the_process_count(tmp_path: Path) -> None:
    # RLIMIT_NPROC counts every process of the server's user outside a user namespace.
    result = await run("ulimit -t; ulimit -u", tmp_path, BASH_UNSANDBOXED=True, BASH_CPU_S=9, BASH_MAX_PROCS=3)
    out = text_of(result).split("--- stdout ---\n")[1].split()
    assert out[0] == "9" and out[1] != "3"


async def test_memory_file_and_cpu_limits_hold(tmp_path: Path, require_bwrap: None) -> None:
    memory = await run("python3 -c 'b = bytearray(600 * 2**20); print(\"ALLOCATED\")'", tmp_path, BASH_MEMORY_MB=200)
    assert "ALLOCATED" not in text_of(memory) and "MemoryError" in text_of(memory)
    big = await run("head -c 3000000 /dev/zero > big; echo rc=$?", tmp_path, BASH_FILE_MB=1)
    assert (tmp_path / "big").stat().st_size <= 2**20 and "rc=0" not in text_of(big)
    started = time.monotonic()
    cpu = await run("bash -c 'while :; do :; done'; echo rc=$?", tmp_path, BASH_CPU_S=1, BASH_TIMEOUT_S=20)
    assert time.monotonic() - started < 10 and not cpu.structured["timed_out"]
    assert "rc=137" in text_of(cpu) or "rc=152" in text_of(cpu)  # SIGKILL at the hard limit, or SIGXCPU


@pytest.mark.skipif(os.geteuid() == 0, reason="the kernel does not apply RLIMIT_NPROC to uid 0 (docs/security.md)")
async def test_process_limit_holds(tmp_path: Path, require_bwrap: None) -> None:
    result = await run("for i in $(seq 40); do sleep 2 & done 2>/dev/null; jobs | wc -l", tmp_path, BASH_MAX_PROCS=10)
    assert int(text_of(result).split("--- stdout ---\n")[1].split()[0]) < 40


def test_sdk_scratch_is_per_session_and_per_owner() -> None:
    runtime = Runtime()
    folders = {runtime.tool_context(owner="a").scratch_dir, runtime.tool_context(owner="b").scratch_dir,
               runtime.tool_context("s1").scratch_dir, runtime.tool_context().scratch_dir}  # fmt: skip
    assert len(folders) == 4
    assert runtime.tool_context("s1", owner="a").scratch_dir == runtime.tool_context("s1").scratch_dir  # the session's
