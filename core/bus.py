"""Signals between worker processes: one Redis stream, read by every worker from its own cursor.

Apps register what they handle (``@bus.on("run.cancel")``) in their ``AppConfig.ready``; the
bus itself knows none of them. ``broadcast`` reaches every worker, this one included:

* Without ``REDIS_URL`` (one process) the handler runs at once, in the sender's thread (as a task
  when the sender is on an event loop).
* With ``REDIS_URL`` the message is appended (XADD) to one stream, trimmed to about ``MAXLEN``
  entries. One listener task per worker, started with its first request, reads the stream with a
  blocking XREAD from the id of the last entry it has seen. The blocking read (``BLOCK_MS``) is
  shorter than the socket timeout, so an idle listener never times out; when the connection is
  lost anyway (Redis restarted, network), the listener reconnects with backoff and resumes from
  the same id: what was sent in between is delivered, and a reader leaves nothing behind in Redis
  (no per-worker channel, group or consumer). A message the sender could not send (Redis down)
  waits in the sender's outbox, in order, and is sent when its listener is connected again.

What a lost message could still leave stale (Redis restarted without its data before a worker
read the stream, an outbox lost with its worker) is repaired by resync hooks (``on_resync``),
which compare the worker's own state with the database after every (re)connect and every
``RESYNC_S`` (docs/design.md §1, "Cross-worker signals").

``status()`` gives this worker's health figures (``/healthz``); ``workers()`` every worker's, as
each listener publishes them to Redis every ``HEARTBEAT_S`` (the admin's bus page).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

STREAM = "agentsite:bus"
MAXLEN = 10_000  # entries kept (approximately): minutes of history at any realistic rate
BLOCK_MS = 2_000  # one blocking read; far below the socket timeout
SOCKET_TIMEOUT_S = 15.0  # a read that hangs longer than a blocking read can means a dead connection
CONNECT_TIMEOUT_S = 5.0
BACKOFF_S = (0.2, 2.0)  # first and longest wait between reconnects (doubling, with jitter)
RESYNC_S = 60.0
HEARTBEAT_S = 5.0
WORKERS = "agentsite:bus:workers"  # sorted set: worker id -> last heartbeat (unix time)
WORKER_KEY = "agentsite:bus:worker:{}"  # one worker's figures (JSON), expiring
WORKER_TTL_S = 30
FORGET_WORKER_S = 600  # a worker silent this long leaves the sorted set
OUTBOX_MAX = 10_000

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"

Handler = Callable[[dict[str, Any]], None]
Hook = Callable[[], object]

_handlers: dict[str, Handler] = {}
_resync_hooks: list[Hook] = []
_listener: asyncio.Task[None] | None = None
_tasks: set[asyncio.Task[Any]] = set()
_outbox: collections.deque[dict[str, Any]] = collections.deque(maxlen=OUTBOX_MAX)
_publisher_client: redis.Redis | None = None
_publisher_lock = threading.Lock()
_send_lock = threading.Lock()  # one sender at a time drains the outbox, so messages keep their order


@dataclass
class _Health:
    connected: bool = False
    connected_at: float | None = None
    last_read_at: float | None = None  # the last blocking read that answered (a message or nothing)
    last_message_at: float | None = None
    down_since: float | None = None
    last_error: str = ""
    reconnects: int = 0
    received: int = 0
    sent: int = 0
    send_failures: int = 0
    lag_ms: float | None = None
    max_lag_ms: float = 0.0
    resyncs: int = 0


_health = _Health()


# ---- the API the apps use ------------------------------------------------------------------


def on(kind: str) -> Callable[[Handler], Handler]:
    """Register the (sync) handler of one message type; it runs in a worker thread."""

    def register(handler: Handler) -> Handler:
        _handlers[kind] = handler
        return handler

    return register


def on_resync(hook: Hook) -> Hook:
    """Register a (sync) check that repairs what a lost message could have left stale, by
    comparing this worker's state with the database. Runs after every (re)connect of the
    listener and every ``RESYNC_S``; it must be cheap and idempotent."""
    _resync_hooks.append(hook)
    return hook


def is_own(message: dict[str, Any]) -> bool:
    """Whether this worker sent ``message`` (for handlers whose sender applied the change itself)."""
    return message.get("origin") == WORKER_ID


def broadcast(message: dict[str, Any]) -> None:
    """Send to every worker, this one included. Call it from sync code (a request thread,
    a handler), after the change it announces is committed (``transaction.on_commit``)."""
    message = {**message, "origin": WORKER_ID, "sent_at": time.time()}
    if not settings.REDIS_URL:
        _deliver_here(message)
        return
    _health.sent += 1
    _outbox.append(message)  # behind any still waiting: messages keep their order
    if _listener_alive() and not _health.connected:
        # Redis is known to be down: no request waits on a connect timeout; the listener sends it.
        log.warning("bus: Redis is down; %r waits to be sent", message.get("type"))
        return
    try:
        _send_waiting()
    except redis.RedisError as exc:
        _health.send_failures += 1
        log.warning("bus: could not send %r (%s); it waits to be sent when Redis answers again", message.get("type"),
                    type(exc).__name__)


def status() -> dict[str, Any]:
    """This worker's bus figures: cheap (no I/O), no secrets; for ``/healthz``."""
    if not settings.REDIS_URL:
        return {"mode": "local", "listener": "in-process"}
    now, h = time.time(), _health

    def age(at: float | None) -> float | None:
        return None if at is None else round(now - at, 3)

    return {
        "mode": "redis",
        "listener": _listener_state(now),
        "reconnects": h.reconnects,
        "last_message_age_s": age(h.last_message_at),
        "last_read_age_s": age(h.last_read_at),
        "down_for_s": age(h.down_since),
        "last_error": h.last_error or None,
        "lag_ms": h.lag_ms,
        "max_lag_ms": round(h.max_lag_ms, 3),
        "received": h.received,
        "sent": h.sent,
        "send_failures": h.send_failures,
        "outbox": len(_outbox),
        "resyncs": h.resyncs,
    }


def listening() -> bool:
    """Whether a message any worker broadcasts now reaches this one: always in one process (no
    Redis); with Redis only while this worker's listener is connected. What a worker keeps in
    memory on the strength of these messages (the registry snapshot) is only trusted then."""
    return not settings.REDIS_URL or _listener_state(time.time()) == "up"


def workers() -> list[dict[str, Any]]:
    """Every worker that reported in the last ``FORGET_WORKER_S``, newest first: its id, how long
    ago it reported, and its figures (``None`` once they expired: the worker is gone or cut off)."""
    if not settings.REDIS_URL:
        return [{"worker": WORKER_ID, "seen_s_ago": 0.0, "figures": status()}]
    client, now = _publisher(), time.time()
    rows = cast(list[tuple[str, float]], client.zrevrangebyscore(WORKERS, "+inf", now - FORGET_WORKER_S, withscores=True))
    seen = [(str(w), float(at)) for w, at in rows]
    if not seen:
        return []
    figures = client.mget([WORKER_KEY.format(w) for w, _ in seen])
    return [{"worker": w, "seen_s_ago": round(now - at, 1), "figures": json.loads(f) if f else None}
            for (w, at), f in zip(seen, figures, strict=True)]


# ---- delivery ------------------------------------------------------------------------------


def close_broken_connections() -> None:
    # Handlers run in pool threads that keep their database connections: drop only broken ones.
    for conn in connections.all(initialized_only=True):
        if conn.errors_occurred or conn.needs_rollback:
            conn.close()


def _run_handler(handler: Handler, message: dict[str, Any]) -> None:
    try:
        handler(message)
    except Exception:  # one failing handler must not stop the bus
        log.exception("bus: handler for %r failed", message.get("type"))
    finally:
        close_broken_connections()


def _deliver_here(message: dict[str, Any]) -> None:
    handler = _handlers.get(str(message.get("type", "")))
    if handler is None:
        log.warning("bus: no handler for message type %r", message.get("type"))
        return
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:
        _run_handler(handler, message)
    else:
        _spawn(loop, sync_to_async(_run_handler, thread_sensitive=False)(handler, message))


def _spawn(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> None:
    task = loop.create_task(coro)
    _tasks.add(task)  # a reference, so the task is not collected mid-way
    task.add_done_callback(_tasks.discard)


def _receive(loop: asyncio.AbstractEventLoop, fields: dict[str, str]) -> None:
    try:
        message = json.loads(fields["m"])
    except (KeyError, ValueError, TypeError):
        log.warning("bus: ignored a malformed stream entry")
        return
    now = time.time()
    lag = max(0.0, (now - float(message.get("sent_at") or now)) * 1000)
    _health.received += 1
    _health.last_message_at = now
    _health.lag_ms = round(lag, 3)
    _health.max_lag_ms = max(_health.max_lag_ms, lag)
    _deliver_here(message)  # each message in its own task: a slow handler delays no other


def _resync() -> None:
    _health.resyncs += 1
    for hook in list(_resync_hooks):
        try:
            hook()
        except Exception:  # a failing check must not stop the others
            log.exception("bus: resync hook %r failed", hook)
        finally:
            close_broken_connections()


# ---- Redis -----------------------------------------------------------------------------------


def _publisher() -> redis.Redis:
    global _publisher_client
    with _publisher_lock:
        if _publisher_client is None:
            _publisher_client = redis.Redis.from_url(
                settings.REDIS_URL, decode_responses=True, socket_timeout=3, socket_connect_timeout=3,
                retry=Retry(NoBackoff(), 1), client_name=f"agentsite-bus-send:{WORKER_ID}",
            )
        return _publisher_client


def _listener_client() -> aioredis.Redis:
    # No automatic retries: a lost connection surfaces here, so it is counted and resumed from
    # the cursor (and the resync hooks run).
    return aioredis.Redis.from_url(
        settings.REDIS_URL, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S, retry=AsyncRetry(NoBackoff(), 0),
        client_name=f"agentsite-bus-listen:{WORKER_ID}",
    )


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def _resume_from(client: aioredis.Redis, cursor: str | None) -> str:
    """Where to read from after (re)connecting. A new worker starts at the end (it holds no state
    yet); a reconnecting one at its own cursor, unless the stream is gone or was recreated behind
    it (Redis restarted without its data): then every entry in it is new."""
    try:
        info = await client.xinfo_stream(STREAM)
    except redis.ResponseError:  # no such key: nothing sent since Redis started
        return "0-0"
    last = str(info["last-generated-id"])
    if cursor is None:
        return last
    return "0-0" if _id(last) < _id(cursor) else cursor


def _send_waiting() -> None:
    """Send the outbox, oldest first; a message leaves it only once Redis has it (RedisError)."""
    with _send_lock:
        while _outbox:
            _publisher().xadd(STREAM, {"m": json.dumps(_outbox[0])}, maxlen=MAXLEN, approximate=True)
            _outbox.popleft()


async def _flush_outbox() -> None:
    try:
        await sync_to_async(_send_waiting, thread_sensitive=False)()
    except redis.RedisError as exc:
        log.warning("bus: %d message(s) still wait to be sent (%s)", len(_outbox), type(exc).__name__)


async def _heartbeat(client: aioredis.Redis) -> None:
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.set(WORKER_KEY.format(WORKER_ID), json.dumps(status()), ex=WORKER_TTL_S)
    pipe.zadd(WORKERS, {WORKER_ID: now})
    pipe.zremrangebyscore(WORKERS, "-inf", now - FORGET_WORKER_S)
    await pipe.execute()


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    # RESP2 (the client's default): [[stream, [(id, {field: value}), ...]]], or None after the block.
    return [(str(entry_id), fields) for _name, entries in reply or [] for entry_id, fields in entries]


def _cancel_requested() -> bool:
    # A cancel (worker shutdown) can be swallowed inside redis-py when it lands while a read's own
    # timeout fires; honour it whatever the read turned it into.
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _listen() -> None:
    loop = asyncio.get_running_loop()
    cursor: str | None = None
    delay = BACKOFF_S[0]
    while True:
        client = _listener_client()
        try:
            cursor = await _resume_from(client, cursor)
            now = time.time()
            _health.connected, _health.connected_at, _health.last_read_at = True, now, now
            _health.down_since, delay = None, BACKOFF_S[0]
            if _outbox:
                await _flush_outbox()
            _spawn(loop, sync_to_async(_resync, thread_sensitive=False)())
            next_resync, next_beat = time.monotonic() + RESYNC_S, 0.0
            while True:
                reply = await client.xread({STREAM: cursor}, block=BLOCK_MS, count=100)
                if _cancel_requested():
                    raise asyncio.CancelledError
                _health.last_read_at = time.time()
                for entry_id, fields in _entries(reply):
                    cursor = entry_id
                    _receive(loop, fields)
                if _outbox:
                    await _flush_outbox()
                now_m = time.monotonic()
                if now_m >= next_beat:
                    await _heartbeat(client)
                    next_beat = now_m + HEARTBEAT_S
                if now_m >= next_resync:
                    _spawn(loop, sync_to_async(_resync, thread_sensitive=False)())
                    next_resync = now_m + RESYNC_S
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis went away: a worker must not lose its listener
            if _cancel_requested():
                raise asyncio.CancelledError from exc
            if _health.connected:
                _health.reconnects += 1
            if _health.connected or _health.down_since is None:
                _health.down_since = time.time()
            _health.connected = False
            _health.last_error = type(exc).__name__
            log.warning("bus: listener lost Redis (%s: %s); reconnecting in %.1f s", type(exc).__name__, exc, delay)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, BACKOFF_S[1])
        finally:
            try:
                await client.aclose()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail too
                pass


def _listener_alive() -> bool:
    return _listener is not None and not _listener.done()


def _listener_state(now: float) -> str:
    if not _listener_alive():
        return "not started"
    h = _health
    if h.connected and h.last_read_at is not None and now - h.last_read_at < BLOCK_MS / 1000 + SOCKET_TIMEOUT_S:
        return "up"
    if h.connected_at is None and h.down_since is None and not h.last_error:
        return "starting"
    return "down"


def listener_ensure() -> None:
    """Start this worker's listener if it is not running (on the server's event loop; nothing
    without Redis). The ASGI entry (``agentsite.asgi``) calls it for every HTTP request: the
    listener starts with a worker's first request, and again with the next one should it end."""
    global _listener
    if settings.REDIS_URL and not _listener_alive():
        _listener = asyncio.get_running_loop().create_task(_listen())
