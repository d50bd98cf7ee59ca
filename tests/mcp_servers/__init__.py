"""MCP servers for tests, and helpers to run them and to count our child processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_MODULE = "tests.mcp_servers.demo_server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo_server(transport: str, port: int, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """Start the demo server over HTTP on 127.0.0.1:port and wait until it accepts connections."""
    proc = subprocess.Popen(
        [sys.executable, "-m", DEMO_MODULE, "--transport", transport, "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"demo server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"demo server not listening on {port} after {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
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
