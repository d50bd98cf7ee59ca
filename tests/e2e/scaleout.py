"""Helpers for the scale-out tests (tests/e2e/test_scaleout.py) and the soak (bench/scaleout_soak.py):
workers that can be killed and restarted, Redis stopped and started, MCP child processes told apart,
runs streamed in a thread and cancelled through another worker, and a clock for how long a change
took to show.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import httpx

from tests.e2e.conftest import LiveServer, sse_events
from tests.mcp_servers import children_running
from tests.mcp_servers.fixtures import DEMO_STDIO

# How the CI machine runs Redis (restarted exactly like this, empty: nothing is saved).
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
               "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]

# Set in each demo MCP server's environment, to tell a worker's children apart.
TAG = "SCALEOUT_TAG"


# ---- Redis -------------------------------------------------------------------------------------


def redis_ping(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_unrestartable(url: str | None) -> str | None:
    """Why this machine's Redis cannot be stopped and started by a test (None when it can)."""
    if not url:
        return "needs REDIS_URL"
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost") or (parsed.port or 6379) != 6379:
        return "Redis is not the local one on port 6379"
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        return "redis-server / redis-cli not installed"
    return None


def redis_stop(url: str) -> None:
    subprocess.run(["redis-cli", "shutdown", "nosave"], capture_output=True, timeout=10)
    wait_until(lambda: not redis_ping(url), 10, what="Redis to stop")


def redis_start(url: str) -> None:
    """Start Redis unless it answers already; wait until it does."""
    if redis_ping(url):
        return
    subprocess.run(REDIS_START, check=True, capture_output=True, timeout=10)
    wait_until(lambda: redis_ping(url), 10, what="Redis to start")


@contextmanager
def redis_down(url: str) -> Iterator[None]:
    """Redis stopped for the block, and started again whatever happens in it."""
    redis_stop(url)
    try:
        yield
    finally:
        redis_start(url)


# ---- waiting and measuring -----------------------------------------------------------------------


def wait_until(predicate: Callable[[], object], timeout: float, what: str = "the condition", interval: float = 0.02) -> float:
    """Seconds until ``predicate()`` held; AssertionError after ``timeout``."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(interval)


def bus(worker: LiveServer) -> dict[str, Any]:
    """The worker's bus figures, as /healthz reports them."""
    return httpx.get(worker.url + "/healthz", timeout=5).json()["bus"]


def listeners_up(*workers: LiveServer) -> bool:
    return all(bus(w)["listener"] == "up" and bus(w)["outbox"] == 0 for w in workers)


# ---- workers -------------------------------------------------------------------------------------


class Cluster:
    """Named workers on one database and one Redis; a worker can be killed and replaced."""

    def __init__(self, names: tuple[str, ...] = ("a", "b"), extra_env: dict[str, str] | None = None) -> None:
        self.extra_env = extra_env
        self.workers: dict[str, LiveServer] = {}
        with ThreadPoolExecutor(len(names)) as pool:  # each start takes seconds: start them together
            starting = {name: pool.submit(LiveServer, extra_env) for name in names}
        try:
            for name, future in starting.items():
                self.workers[name] = future.result()
        except BaseException:
            for future in starting.values():
                if future.exception() is None:
                    future.result().stop()
            raise

    def __getitem__(self, name: str) -> LiveServer:
        return self.workers[name]

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown code runs, whatever the worker held in memory is lost."""
        worker = self.workers[name]
        worker.proc.kill()
        worker.proc.wait()
        worker.stop()

    def restart(self, name: str) -> LiveServer:
        self.workers[name] = LiveServer(self.extra_env)
        return self.workers[name]

    def stop(self) -> None:
        with ThreadPoolExecutor(max(1, len(self.workers))) as pool:
            list(pool.map(LiveServer.stop, self.workers.values()))


# ---- MCP children --------------------------------------------------------------------------------


def mcp_config(tag: str) -> dict[str, Any]:
    """The demo MCP server over stdio, its child process marked with ``tag``."""
    return {**DEMO_STDIO, "env": {TAG: tag}}


def _tag_of(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            pairs = f.read().split(b"\0")
    except OSError:
        return None
    prefix = TAG.encode() + b"="
    for pair in pairs:
        if pair.startswith(prefix):
            return pair[len(prefix):].decode()
    return None


def mcp_children(worker: LiveServer) -> dict[str, int]:
    """The worker's live demo MCP children: tag -> pid."""
    out = {}
    for pid in children_running("demo_server", worker.proc.pid):
        tag = _tag_of(pid)
        if tag is not None:
            out[tag] = pid
    return out


# ---- runs ------------------------------------------------------------------------------------------


SLOW = "slow "  # the fake model streams one of these every 50 ms


class Stream:
    """A slow streamed run on one worker, read in a thread: its session, and when and how it ended.

    The caller scripts the fake model first, e.g. ``Reply(content=SLOW * 600, chunk_size=5, delay_s=0.05)``.
    """

    def __init__(self, worker: LiveServer, headers: dict[str, str], model_id: str) -> None:
        self.started = threading.Event()
        self.session_id = ""
        self.end: tuple[str | None, dict] | None = None
        self.ended_at: float | None = None
        self.error: BaseException | None = None
        self._args = (worker.url, headers, model_id)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self.started.wait(30):
            raise AssertionError(f"the stream did not start: {self.error!r}")
        if self.error is not None:
            raise AssertionError(f"the stream did not start: {self.error!r}")

    def _run(self) -> None:
        url, headers, model_id = self._args
        try:
            with httpx.Client(timeout=120) as client, client.stream(
                "POST", url + "/v1/infer/stream", json={"model_id": model_id, "session_id": "new", "text": "go"}, headers=headers
            ) as res:
                if res.status_code != 200:
                    raise AssertionError(f"{res.status_code}: {res.read().decode(errors='replace')[:500]}")
                lines = res.iter_lines()
                first = sse_events(lines, count=2)
                if not first or "session_id" not in first[0][1]:
                    raise AssertionError(f"unexpected start of stream: {first}")
                self.session_id = first[0][1]["session_id"]
                self.started.set()
                events = sse_events(lines, until="done")
                self.end = events[-1] if events else None
        except BaseException as exc:  # noqa: BLE001 - reported by started/wait_end
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.started.set()

    def wait_end(self, timeout: float) -> tuple[str | None, dict]:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the stream did not end within {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.end is not None
        return self.end


def cancel_through(src: LiveServer, stream: Stream, headers: dict[str, str], timeout: float = 10.0) -> float:
    """Cancel ``stream`` through ``src``; seconds from the cancel's answer to the stream's ``done``."""
    res = httpx.post(f"{src.url}/v1/sessions/{stream.session_id}/cancel", headers=headers, timeout=10)
    assert res.status_code == 202, res.text
    sent = time.monotonic()
    end = stream.wait_end(timeout)
    assert end[0] == "done" and end[1]["finish_reason"] == "cancelled", end
    assert stream.ended_at is not None
    return max(0.0, stream.ended_at - sent)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
