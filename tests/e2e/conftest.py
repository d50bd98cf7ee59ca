"""A real Daphne server in a subprocess, on the test database (tests use transactional_db)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.mcp_servers import free_port, stop

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    # A synthetic microphone (a beep), granted without a prompt: only getUserMedia notices.
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]


def sse_events(lines: Iterator[str], count: int | None = None, until: str | None = None) -> list[tuple[str | None, dict]]:
    """(event, data) pairs from one shared line iterator — dropping httpx's iterator early
    closes the connection, so callers keep one ``response.iter_lines()`` for the whole read."""
    out, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[6:])))
            if (count and len(out) >= count) or (until and name == until):
                break
    return out


def eventually(predicate: Any, timeout: float = 5.0) -> bool:
    """Whether ``predicate()`` holds within ``timeout`` seconds: for what a worker writes just
    after its answer (a stateless run's usage record)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def database_url() -> str:
    from django.db import connection

    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    auth = conf["USER"] + (f":{conf['PASSWORD']}" if conf["PASSWORD"] else "")
    return f"postgres://{auth}@{conf['HOST'] or '127.0.0.1'}:{conf['PORT'] or 5432}/{conf['NAME']}"


class LiveServer:
    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1", "AGENTSITE_MEMORY_EXTRACTION": "0",
               **(extra_env or {})}
        # A file, not a pipe: an unread pipe fills up and blocks the server.
        self.log_path = ROOT / "var" / f"live-server-{self.port}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", f"127.0.0.1:{self.port}"], cwd=ROOT, env=env,
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited:\n" + self.log_path.read_text())
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start in 30 s")

    def stop(self) -> None:
        stop(self.proc, timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def live_server_proc(django_db_setup, django_db_blocker) -> Iterator[LiveServer]:
    server = LiveServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(live_server_proc: LiveServer) -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (the browser test modules skip when either is absent)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, which makes Django refuse ORM
    # calls from the test. The ORM use here is the test's own, on its own thread, so allow it;
    # the server (started before, see the fixture argument) runs without this switch.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
