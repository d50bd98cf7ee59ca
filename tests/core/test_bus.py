"""The cross-worker bus (core/bus.py): local delivery without Redis; with Redis, a listener that
survives idle periods and lost connections without losing a message, and leaves nothing behind.

The Redis tests run where REDIS_URL is set (the PostgreSQL pass of .ci/run), each on a stream of
its own, with the listener running on the test's event loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from core import bus

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.threads: set[str] = set()
        self._cond = threading.Condition()

    def __call__(self, message: dict[str, Any]) -> None:
        with self._cond:
            self.messages.append(message)
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()

    def numbers(self) -> list[int]:
        return [m["n"] for m in self.messages]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.numbers()


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Inbox:
    box = Inbox()
    monkeypatch.setattr(bus, "_handlers", {**bus._handlers, "test.ping": box})
    monkeypatch.setattr(bus, "_health", bus._Health())
    monkeypatch.setattr(bus, "_outbox", type(bus._outbox)(maxlen=bus.OUTBOX_MAX))
    monkeypatch.setattr(bus, "_resync_hooks", [])
    return box


def test_without_redis_a_broadcast_reaches_this_process_at_once(settings, inbox: Inbox) -> None:
    settings.REDIS_URL = None
    bus.broadcast({"type": "test.ping", "n": 1})
    assert inbox.numbers() == [1]
    message = inbox.messages[0]
    assert bus.is_own(message) and message["sent_at"] <= time.time()
    assert bus.status() == {"mode": "local", "listener": "in-process"}


async def test_without_redis_a_broadcast_from_an_event_loop_runs_the_handler_off_the_loop(settings, inbox: Inbox) -> None:
    settings.REDIS_URL = None
    bus.broadcast({"type": "test.ping", "n": 7})
    assert await inbox.wait_for(1) == [7]
    assert threading.main_thread().name not in inbox.threads


def test_a_failing_handler_is_logged_not_raised(settings, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    settings.REDIS_URL = None

    def boom(message: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    monkeypatch.setattr(bus, "_handlers", {"test.boom": boom})
    bus.broadcast({"type": "test.boom"})
    assert "handler for 'test.boom' failed" in caplog.text


# ---- with Redis ------------------------------------------------------------------------------


@pytest.fixture
def redis_bus(settings, inbox: Inbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """A private stream and worker keys; short blocking reads and socket timeout, so a test sees
    several idle timeouts' worth of waiting in a few seconds."""
    settings.REDIS_URL = REDIS_URL
    tag = f"test-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setattr(bus, "STREAM", f"agentsite:{tag}:bus")
    monkeypatch.setattr(bus, "WORKERS", f"agentsite:{tag}:workers")
    monkeypatch.setattr(bus, "WORKER_KEY", f"agentsite:{tag}:worker:{{}}")
    monkeypatch.setattr(bus, "BLOCK_MS", 300)
    monkeypatch.setattr(bus, "SOCKET_TIMEOUT_S", 1.0)
    monkeypatch.setattr(bus, "BACKOFF_S", (0.05, 0.5))
    monkeypatch.setattr(bus, "HEARTBEAT_S", 0.2)
    monkeypatch.setattr(bus, "_publisher_client", None)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.delete(bus.STREAM, bus.WORKERS, bus.WORKER_KEY.format(bus.WORKER_ID))
    client.close()


@pytest.fixture
async def listener(redis_bus: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.get_running_loop().create_task(bus._listen())
    monkeypatch.setattr(bus, "_listener", task)
    deadline = time.monotonic() + 5
    while not bus._health.connected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert bus._health.connected
    yield task
    task.cancel()
    try:
        await asyncio.wait_for(task, 10)  # a listener that ignored its cancel fails here, not hangs
    except asyncio.CancelledError:
        pass


def kill_listener_connection(client: redis.Redis) -> int:
    """Close the listener's connection from the server side, as a Redis restart would."""
    ids = [c["id"] for c in client.client_list() if c.get("name") == f"agentsite-bus-listen:{bus.WORKER_ID}"]
    for cid in ids:
        client.client_kill_filter(_id=cid)
    return len(ids)


async def send(*numbers: int) -> None:
    for n in numbers:
        await asyncio.to_thread(bus.broadcast, {"type": "test.ping", "n": n})


@needs_redis
async def test_an_idle_listener_outlives_its_socket_timeout(listener, inbox: Inbox) -> None:
    # idle for three socket timeouts: the blocking read is shorter, so nothing ever times out
    await asyncio.sleep(3 * bus.SOCKET_TIMEOUT_S)
    await send(1)
    assert await inbox.wait_for(1) == [1]
    figures = bus.status()
    assert figures["listener"] == "up" and figures["reconnects"] == 0 and figures["received"] == 1
    assert figures["lag_ms"] is not None and figures["lag_ms"] < 1000


@needs_redis
async def test_messages_sent_while_the_listener_reconnects_are_delivered_in_order(listener, redis_bus: redis.Redis,
                                                                                    inbox: Inbox) -> None:
    await send(1, 2)
    assert await inbox.wait_for(2) == [1, 2]
    for round_ in range(3):
        assert kill_listener_connection(redis_bus) == 1
        base = 10 * (round_ + 1)
        await send(base, base + 1, base + 2)  # while it is away
        await inbox.wait_for(2 + 3 * (round_ + 1))
    assert inbox.numbers() == [1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32]
    # A cut that lands between two reads goes unnoticed: redis-py's pool replaces a connection
    # the server closed before handing it out again. One that lands in a read is counted.
    assert 1 <= bus.status()["reconnects"] <= 3


@needs_redis
async def test_a_stream_recreated_behind_the_cursor_is_read_from_its_start(listener, redis_bus: redis.Redis,
                                                                           inbox: Inbox) -> None:
    # Redis restarted without its data: the stream is gone and its new ids may sort before the cursor
    redis_bus.xadd(bus.STREAM, {"m": '{"type": "test.ping", "n": 0}'}, id=f"{int(time.time() * 1000) + 3_600_000}-0")
    assert await inbox.wait_for(1) == [0]
    redis_bus.delete(bus.STREAM)
    kill_listener_connection(redis_bus)
    await send(1, 2)
    assert await inbox.wait_for(3) == [0, 1, 2]


@needs_redis
async def test_a_message_that_could_not_be_sent_is_sent_when_redis_answers(listener, monkeypatch: pytest.MonkeyPatch,
                                                                          inbox: Inbox) -> None:
    class Down:
        def xadd(self, *args: Any, **kwargs: Any) -> None:
            raise redis.ConnectionError("down")

    real = bus._publisher()
    monkeypatch.setattr(bus, "_publisher_client", Down())
    await send(1)
    assert bus.status()["outbox"] == 1 and bus.status()["send_failures"] == 1
    await send(2)  # queued behind the first, not sent past it
    monkeypatch.setattr(bus, "_publisher_client", real)
    assert await inbox.wait_for(2) == [1, 2]
    assert bus.status()["outbox"] == 0


@needs_redis
async def test_resync_hooks_run_on_every_connect(listener, redis_bus: redis.Redis, monkeypatch: pytest.MonkeyPatch,
                                                inbox: Inbox) -> None:
    calls: list[float] = []
    monkeypatch.setattr(bus, "_resync_hooks", [lambda: calls.append(time.monotonic())])
    kill_listener_connection(redis_bus)
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert len(calls) == 1


@needs_redis
async def test_reconnects_leave_nothing_behind_in_redis(listener, redis_bus: redis.Redis, inbox: Inbox) -> None:
    await send(1)
    await inbox.wait_for(1)
    deadline = time.monotonic() + 5  # the first heartbeat written
    while not redis_bus.exists(bus.WORKER_KEY.format(bus.WORKER_ID)) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    before = sorted(redis_bus.scan_iter(match=f"{bus.STREAM.rsplit(':', 1)[0]}:*"))
    for _ in range(5):
        kill_listener_connection(redis_bus)
        await asyncio.sleep(0.3)
    await send(2)
    assert await inbox.wait_for(2) == [1, 2]
    after = sorted(redis_bus.scan_iter(match=f"{bus.STREAM.rsplit(':', 1)[0]}:*"))
    assert after == before == sorted([bus.STREAM, bus.WORKERS, bus.WORKER_KEY.format(bus.WORKER_ID)])
    listeners = [c for c in redis_bus.client_list() if c.get("name") == f"agentsite-bus-listen:{bus.WORKER_ID}"]
    assert len(listeners) == 1


@needs_redis
async def test_every_worker_reports_its_figures(listener, inbox: Inbox) -> None:
    await send(1)
    await inbox.wait_for(1)
    await asyncio.sleep(2 * bus.HEARTBEAT_S + bus.BLOCK_MS / 1000)
    reports = await asyncio.to_thread(bus.workers)
    assert [r["worker"] for r in reports] == [bus.WORKER_ID]
    assert reports[0]["figures"]["listener"] == "up" and reports[0]["figures"]["received"] == 1


# ---- where the figures show ------------------------------------------------------------------


def test_healthz_and_the_admin_show_the_bus(client, admin_client, settings) -> None:
    settings.REDIS_URL = None
    assert client.get("/healthz").json()["bus"] == {"mode": "local", "listener": "in-process"}
    index = admin_client.get("/admin/")
    assert b'id="bus-status"' in index.content and b"/admin/bus/" in index.content
    page = admin_client.get("/admin/bus/")
    assert page.status_code == 200 and b"One process" in page.content
    assert client.get("/admin/bus/").status_code == 302  # staff only


@needs_redis
def test_the_admin_page_lists_every_worker(redis_bus: redis.Redis, admin_client) -> None:
    # The test client is sync, so the listener runs on a loop of its own, in a thread.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> None:
        bus._listener = loop.create_task(bus._listen())

    asyncio.run_coroutine_threadsafe(start(), loop).result(5)
    try:
        deadline = time.monotonic() + 5
        while not redis_bus.exists(bus.WORKER_KEY.format(bus.WORKER_ID)) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2 * bus.HEARTBEAT_S)  # a heartbeat after the first read
        page = admin_client.get("/admin/bus/")
        assert page.status_code == 200 and bus.WORKER_ID.encode() in page.content and b"<b>up</b>" in page.content
    finally:
        listener = bus._listener
        assert listener is not None
        loop.call_soon_threadsafe(listener.cancel)
        time.sleep(0.2)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        bus._listener = None
