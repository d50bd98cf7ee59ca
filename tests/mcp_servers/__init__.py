"""MCP servers for tests, and helpers to run them and to count our child processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_MODULE = "tests.mcp_servers.demo_server"
PROD_MODULE = "tests.mcp_servers.prod_server"
# The npm reference server, installed by .ci/run (npm ci in this folder).
EVERYTHING_BIN = REPO / "tests" / "mcp_servers" / "node_modules" / ".bin" / "mcp-server-everything"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The demo server's own SDK app for legacy SSE (``MCPServer.sse_app``), served at a path of our choice.
_SSE_APP = (
    "import uvicorn\n"
    "from tests.mcp_servers.demo_server import server\n"
    "uvicorn.run(server.sse_app(sse_path={path!r}), host='127.0.0.1', port={port}, log_level='warning')\n"
)


def _start_listening(
    args: list[str], port: int, timeout: float, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Run ``python args...`` from the repo root and wait until 127.0.0.1:port accepts connections."""
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"test server {args} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"test server {args} not listening on {port} after {timeout} s")


def start_demo_server(transport: str, port: int, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """Start the demo server over HTTP on 127.0.0.1:port and wait until it accepts connections."""
    return _start_listening(["-m", DEMO_MODULE, "--transport", transport, "--port", str(port)], port, timeout)


def start_prod_server(port: int, *args: str, count_dir: str, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """Start the production fixture server (prod_server.py) over HTTP with ``args``, counting
    executions in ``count_dir``."""
    return _start_listening(
        ["-m", PROD_MODULE, "--port", str(port), *args], port, timeout, env={"PROD_COUNT_DIR": count_dir}
    )


def start_demo_sse_at(path: str, port: int, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """Start the demo server's legacy SSE app with its event stream at ``path`` (not only ``/sse``)."""
    return _start_listening(["-c", _SSE_APP.format(path=path, port=port)], port, timeout)


def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def stop(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """Terminate a child process (if still running), killing it after ``timeout`` s, and reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def children(parent: int | None = None) -> dict[int, tuple[str, str]]:
    """Direct child processes of ``parent`` (default: us): pid -> (state letter, command line)."""
    me, out = parent or os.getpid(), {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[1]) != me:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        out[int(name)] = (fields[0].decode(), cmdline)
    return out


def children_running(needle: str, parent: int | None = None) -> list[int]:
    """Live (non-zombie) children whose command line contains ``needle``."""
    return [pid for pid, (state, cmd) in children(parent).items() if needle in cmd and state != "Z"]
