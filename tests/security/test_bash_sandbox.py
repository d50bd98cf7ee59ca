"""The bash tool, used as an attacker would, through ``/v1/tools/call`` on a real worker.

Inside bubblewrap a user's command must not reach the database file, the data directory and
its secret key, the project folder, the server's environment (``/proc/1/environ``, or any
``/proc/*/environ``), another user's scratch files, or the network. The same probes are run on
a worker with ``AGENTSITE_BASH_UNSANDBOXED=1``, where each of them succeeds: proof that they
would see a leak. Without bubblewrap the tool refuses to run unless that opt-out is set.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import connection
from rest_framework.test import APIClient

from inference.engine.tools import builtins
from inference.lifecycle import run_begin
from registry.models import Tool
from registry.skill_services import builtins_sync
from tests.e2e.conftest import LiveServer
from tests.factories import LLMModelFactory, UserFactory, bearer, save_fields

MARKER = f"server-env-marker-{secrets.token_hex(6)}"
ALLOWED_ENV = {"PATH", "HOME", "LANG", "TERM"}


def enable_bash() -> None:
    builtins_sync()
    save_fields(Tool.objects.get(tool_id="bash"), enabled=True)


def data_dir() -> Path:
    return Path(django_settings.AGENTSITE["DATA_DIR"])


def user_scratch(user: Any) -> Path:
    return data_dir() / "scratch" / "users" / str(user.pk)


def stdout_of(result: dict[str, Any]) -> str:
    text = result["content"][0]["text"]
    return text.split("--- stdout ---\n", 1)[1].split("\n--- stderr ---\n", 1)[0] if "--- stdout ---\n" in text else ""


def require_sandbox() -> None:
    status = builtins.probe_sandbox()
    if not status.usable:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test the bash sandbox, but bubblewrap is unusable: {status.reason}")
        pytest.skip(status.reason)


@pytest.fixture
def planted() -> Iterator[tuple[Path, str]]:
    """A secret-like file in the data dir (like ``secret_key``), with content only the test knows."""
    content = f"planted-secret-{secrets.token_hex(8)}"
    path = data_dir() / f"planted-{secrets.token_hex(4)}"
    path.write_text(content)
    yield path, content
    path.unlink(missing_ok=True)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on 127.0.0.1 that a command with network access could reach."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server


def was_connected(server: socket.socket) -> bool:
    readable, _, _ = select.select([server], [], [], 0.5)
    return bool(readable)


def probe_script(*, other_scratch: Path, planted: Path, port: int) -> str:
    """One labelled section per attempt; each prints what it could get."""
    db = connection.settings_dict["NAME"] if connection.vendor == "sqlite" else "/nonexistent-db"
    root = django_settings.BASE_DIR
    attempts = {
        "db": f"head -c 15 '{db}'",
        "data_dir": f"ls -A '{data_dir()}'",
        "secret_key": f"cat '{data_dir() / 'secret_key'}'",
        "planted": f"cat '{planted}'",
        "project": f"ls -A '{root}'",
        "manage_py": f"cat '{root / 'manage.py'}'",
        "proc1": "tr '\\0' '\\n' < /proc/1/environ",
        "all_environs": f"grep -l '{MARKER}' /proc/*/environ",
        "parent_environ": "tr '\\0' '\\n' < /proc/$PPID/environ",
        "env": "env",
        "other_user": f"cat '{other_scratch / 'mine.txt'}'; ls -A '{other_scratch.parent}'",
        "network": f"timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' && echo CONNECTED",
    }
    return "".join(f"echo '=== {name}'; ( {command} ) 2>&1; " for name, command in attempts.items())


def sections(output: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in output.split("=== ")[1:]:
        name, _, body = chunk.partition("\n")
        found[name.strip()] = body
    return found


def call_bash(http: httpx.Client, command: str) -> dict[str, Any]:
    res = http.post("/v1/tools/call", json={"tool_id": "bash", "arguments": {"command": command}})
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


def attack(extra_env: dict[str, str], planted: tuple[Path, str], listener: socket.socket) -> tuple[dict[str, Any], dict, str]:
    """Alice leaves a file in her stateless scratch; Bob, on a live worker, tries everything."""
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    enable_bash()
    server = LiveServer({"AGENTSITE_BASH_ENABLED": "1", "AGENTSITE_SANDBOX_TEST_MARKER": MARKER, **extra_env})
    try:
        with httpx.Client(base_url=server.url, headers=bearer(alice), timeout=60) as as_alice, \
             httpx.Client(base_url=server.url, headers=bearer(bob), timeout=60) as as_bob:  # fmt: skip
            mine = call_bash(as_alice, "echo alice-private-words > mine.txt; pwd")
            assert stdout_of(mine).strip() == str(user_scratch(alice)), mine
            script = probe_script(other_scratch=user_scratch(alice), planted=planted[0], port=listener.getsockname()[1])
            probes = call_bash(as_bob, script)
            bobs_pwd = stdout_of(call_bash(as_bob, "pwd; ls -A")).split()
    finally:
        server.stop()
        for user in (alice, bob):
            shutil.rmtree(user_scratch(user), ignore_errors=True)
    assert bobs_pwd == [str(user_scratch(bob))]  # his own folder, without Alice's file in it
    return probes, sections(stdout_of(probes)), probes["content"][0]["text"]


@pytest.mark.e2e
def test_sandboxed_bash_reaches_none_of_the_servers_secrets(
    transactional_db: None, planted: tuple[Path, str], listener: socket.socket
) -> None:
    require_sandbox()
    result, found, text = attack({}, planted, listener)
    assert not result["is_error"] and result["structured"]["sandboxed"] is True
    assert "sandbox: bwrap (no network, read-only system, writable scratch)" in text
    assert set(found) == {"db", "data_dir", "secret_key", "planted", "project", "manage_py", "proc1", "all_environs",
                          "parent_environ", "env", "other_user", "network"}  # fmt: skip
    # Files: the database, the data dir with the secret key, the project are simply not there.
    assert "SQLite format" not in found["db"] and "No such file" in found["db"]
    assert set(found["data_dir"].split()) <= {"scratch"}  # only the mount point of the scratch folders
    assert "No such file" in found["secret_key"] and "No such file" in found["planted"]
    assert planted[1] not in text
    secret_key = data_dir() / "secret_key"
    if secret_key.exists():
        assert secret_key.read_text().strip() not in text
    assert not set(found["project"].split()) & {"manage.py", "pyproject.toml", "agentsite", "inference"}
    assert "No such file" in found["manage_py"] and "DJANGO_SETTINGS_MODULE" not in found["manage_py"]
    # The environment: the sandbox's /proc is its own, and its processes hold only the allow-list.
    assert MARKER not in text
    assert {line.split("=", 1)[0] for line in found["proc1"].split()} <= ALLOWED_ENV
    assert found["all_environs"].strip() == ""
    # Another user's scratch folder is neither readable nor listed.
    assert "alice-private-words" not in text and "No such file" in found["other_user"]
    # No network, not even loopback.
    assert "CONNECTED" not in found["network"] and not was_connected(listener)


@pytest.mark.e2e
def test_the_same_probes_succeed_unsandboxed(transactional_db: None, planted: tuple[Path, str], listener: socket.socket) -> None:
    """The control: with the explicit opt-out every probe above finds what it looks for."""
    result, found, text = attack({"AGENTSITE_BASH_UNSANDBOXED": "1"}, planted, listener)
    assert not result["is_error"] and result["structured"]["sandboxed"] is False
    assert "sandbox: none (unsandboxed mode is on: AGENTSITE_BASH_UNSANDBOXED)" in text
    if connection.vendor == "sqlite":
        assert "SQLite format" in found["db"]
    assert planted[1] in found["planted"] and planted[0].name in found["data_dir"]
    assert "manage.py" in found["project"] and "DJANGO_SETTINGS_MODULE" in found["manage_py"]
    assert MARKER in found["parent_environ"]  # the worker's own environment, secrets and all
    assert "alice-private-words" in found["other_user"]
    assert "CONNECTED" in found["network"] and was_connected(listener)


# ---- in-process: failing closed, the opt-out, and whose folder a stateless run uses -----------


@pytest.fixture
def bash_on(settings: Any, db: None) -> None:
    enable_bash()
    settings.AGENTSITE = {**settings.AGENTSITE, "BASH_ENABLED": True}


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtins, "BWRAP", "agentsite-no-such-bwrap")
    monkeypatch.setattr(builtins, "_probe_cache", {})


def tool_call(client: APIClient, command: str) -> dict[str, Any]:
    res = client.post("/v1/tools/call", {"tool_id": "bash", "arguments": {"command": command}}, format="json")
    assert res.status_code == 200, res.content
    body: dict[str, Any] = res.json()
    return body


def test_without_bubblewrap_bash_refuses_to_run(alice: Any, alice_api: APIClient, bash_on: None, no_bwrap: None) -> None:
    shutil.rmtree(user_scratch(alice), ignore_errors=True)
    result = tool_call(alice_api, "echo ran > ran.txt")
    text = result["content"][0]["text"]
    assert result["is_error"] is True and result["structured"] == {"sandboxed": False}
    assert "no working sandbox (bubblewrap (bwrap) is not installed)" in text
    assert "install bubblewrap" in text and "AGENTSITE_BASH_UNSANDBOXED=1" in text
    assert not user_scratch(alice).exists()  # nothing ran


def test_unsandboxed_opt_in_runs_and_says_so(
    alice: Any, alice_api: APIClient, bash_on: None, no_bwrap: None, settings: Any
) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "BASH_UNSANDBOXED": True}
    try:
        result = tool_call(alice_api, "echo ran; pwd")
    finally:
        shutil.rmtree(user_scratch(alice), ignore_errors=True)
    assert result["is_error"] is False and result["structured"]["sandboxed"] is False
    assert "sandbox: none (unsandboxed mode is on: AGENTSITE_BASH_UNSANDBOXED)" in result["content"][0]["text"]
    assert stdout_of(result).split() == ["ran", str(user_scratch(alice))]


def test_stateless_runs_work_in_the_callers_own_folder(alice: Any, bob: Any, db: None) -> None:
    model = LLMModelFactory(model_id="m")
    for user in (alice, bob):
        run = run_begin(user=user, data={"model_id": model.model_id, "text": "hi"})
        assert run.prepared.context.scratch_dir == str(user_scratch(user))
