"""MCP calls in flight across two Daphne workers (docs/mcp.md): deleting a server through one
worker cancels the call running on the other (the server is told, the caller answered
``cancelled``) and stops that worker's child.

Runs only when REDIS_URL is set (the PostgreSQL pass of .ci/run sets it).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LiveServer
from tests.factories import StaffFactory, bearer
from tests.mcp_servers import PROD_MODULE, REPO

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (multi-worker)")]


@pytest.fixture(scope="module")
def workers(django_db_setup, django_db_blocker) -> Iterator[tuple[LiveServer, LiveServer]]:
    a, b = LiveServer(), LiveServer()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def staff(transactional_db) -> dict[str, str]:
    return bearer(StaffFactory(username="mcp-ops"))


def test_deleting_through_one_worker_cancels_the_call_running_on_the_other(
    workers: tuple[LiveServer, LiveServer], staff: dict[str, str], tmp_path: Path
) -> None:
    a, b = workers
    for w in (a, b):  # wake both bus listeners
        httpx.get(w.url + "/v1/tools", headers=staff)
    config = {"command": sys.executable, "args": ["-m", PROD_MODULE], "cwd": str(REPO),
              "env": {"PROD_COUNT_DIR": str(tmp_path)}}
    res = httpx.post(a.url + "/v1/tools/mcp", json={"mcpServers": {"shared": config}}, headers=staff, timeout=30)
    assert res.json()["servers"]["shared"]["status"] == "connected"

    answer: dict[str, Any] = {}

    def call_on_b() -> None:
        body = {"tool_id": "shared.sleep", "arguments": {"seconds": 5, "key": "two"}}
        answer.update(httpx.post(b.url + "/v1/tools/call", json=body, headers=staff, timeout=30).json())

    thread = threading.Thread(target=call_on_b)
    thread.start()
    marker = tmp_path / "two"
    deadline = time.monotonic() + 20
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "start\n"

    started = time.monotonic()
    assert httpx.delete(a.url + "/v1/tools/mcp/shared", headers=staff, timeout=30).status_code == 204
    thread.join(20)
    assert time.monotonic() - started < 4  # well before the 5 s call would have ended
    assert answer["is_error"] is True and answer["content"][0]["text"].startswith("cancelled")
    time.sleep(5.5)
    assert marker.read_text() == "start\n"  # the call never finished on the server
