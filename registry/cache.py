"""What a run resolves, held in memory: models, tools, MCP server configs, the env store and
users' groups, with every ``allowed_groups`` list, and what other apps keep with it (``part``:
the quotas).

A run used to read the registry several times (the caller's groups, the model and its groups,
the tools with their server's and skill's groups, every ``${VAR}``); now it reads a snapshot
loaded once per change. Listings and the admin keep reading the database.

When the snapshot is dropped:

* any save, delete or group change of those rows (Django signals) drops it in this process at
  once and, once committed, in every worker: over the bus with Redis, otherwise through a stamp
  file in the data dir that reads check (workers on one machine sharing SQLite; within one
  request it is looked at once a second at most: ``one_look_per_request``);
* the bus's resync (every ``RESYNC_S`` and after a reconnect) drops it too, so a lost message
  leaves it stale for a minute at most;
* while this worker's bus listener is not connected (Redis down; a process that runs none, such
  as a management command) there is no snapshot: every read goes to the database.

Writes that bypass signals (``QuerySet.update``, raw SQL) must call ``changed()``. A snapshot read
inside a transaction is used but not kept: the transaction may still be rolled back.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from core import bus

from .models import EnvVar, LLMModel, MCPServer, Skill, Tool

REGISTRY_CHANGED = "registry.changed"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CachedModel:
    row: LLMModel
    groups: frozenset[int]  # empty: open to every signed-in user


@dataclass(frozen=True, slots=True)
class CachedTool:
    row: Tool  # ``server`` and ``skill`` loaded with it
    gates: tuple[frozenset[int], ...]  # the tool's, its server's and its skill's groups that are set


@dataclass(slots=True)
class Snapshot:
    models: dict[str, CachedModel]
    tools: dict[str, CachedTool]
    mcp_tools: dict[tuple[str, str], str]  # (server, name on the server) -> tool id
    servers: dict[str, dict[str, Any]]  # MCP server name -> stored config
    env: dict[str, str]
    members: dict[int, frozenset[int]] = field(default_factory=dict)  # user id -> group ids, as users come
    parts: dict[str, Any] = field(default_factory=dict)  # what other apps keep with it (``part``)

    def part(self, name: str, load: Callable[[], T]) -> T:
        """Something another app derives from the database and keeps as long as this snapshot
        (e.g. the quotas): loaded on first use. Its writes must drop the snapshot (``changed``)."""
        if name not in self.parts:
            self.parts[name] = load()
        return cast(T, self.parts[name])

    def env_lookup(self, name: str) -> str | None:
        """As ``env_store.env_lookup``: the store's value, else the process's."""
        value = self.env.get(name)
        return value if value is not None else os.environ.get(name)

    def groups_of(self, user: Any) -> frozenset[int]:
        found = self.members.get(user.pk)
        if found is None:
            found = frozenset(user.groups.values_list("id", flat=True))
            self.members[user.pk] = found
        return found

    def admits(self, user: Any, gates: tuple[frozenset[int], ...]) -> bool:
        """``registry.access``'s rule: staff always; others pass every list that is set."""
        if getattr(user, "is_staff", False) and getattr(user, "is_authenticated", False):
            return True
        if not getattr(user, "is_authenticated", False):
            return False
        if not gates:
            return True
        mine = self.groups_of(user)
        return all(gate & mine for gate in gates)


_lock = threading.Lock()
_current: Snapshot | None = None
_generation = 0  # bumped by every drop: a load that raced with a change is not kept
_stamp_seen: tuple[int, int] | None = None  # the stamp file in place when ``_current`` was loaded (no Redis)


def snapshot() -> Snapshot:
    """The current snapshot, loaded if a change dropped it (sync: may read the database)."""
    global _current, _stamp_seen
    if not bus.listening():
        # Redis is configured but this worker cannot hear others' changes now (Redis down, or a
        # process without a listener): read afresh, as if there were no snapshot.
        return _load()
    stamp = _read_stamp()
    current = _current
    if current is not None and stamp == _stamp_seen:
        return current
    generation = _generation
    loaded = _load()
    if connection.in_atomic_block:
        return loaded
    with _lock:
        if generation == _generation:
            _current, _stamp_seen = loaded, stamp
    return loaded


def current() -> Snapshot | None:
    """The snapshot if one is loaded and still good, else None; never loads (no query, so it
    may be called on the event loop)."""
    if not bus.listening():
        return None
    found = _current
    if found is None or _read_stamp() != _stamp_seen:
        return None
    return found


def _groups(through: Any, column: str) -> dict[int, frozenset[int]]:
    out: dict[int, set[int]] = {}
    for owner, group in through.objects.values_list(column, "group_id"):
        out.setdefault(owner, set()).add(group)
    return {k: frozenset(v) for k, v in out.items()}


def _load() -> Snapshot:
    model_groups = _groups(LLMModel.allowed_groups.through, "llmmodel_id")
    tool_groups = _groups(Tool.allowed_groups.through, "tool_id")
    server_groups = _groups(MCPServer.allowed_groups.through, "mcpserver_id")
    skill_groups = _groups(Skill.allowed_groups.through, "skill_id")
    none: frozenset[int] = frozenset()
    models = {m.model_id: CachedModel(m, model_groups.get(m.pk, none)) for m in LLMModel.objects.filter(enabled=True)}
    tools: dict[str, CachedTool] = {}
    mcp_tools: dict[tuple[str, str], str] = {}
    for t in Tool.objects.filter(enabled=True).select_related("server", "skill"):
        gates = (tool_groups.get(t.pk, none),
                 server_groups.get(t.server_id, none) if t.server_id else none,
                 skill_groups.get(t.skill_id, none) if t.skill_id else none)
        tools[t.tool_id] = CachedTool(t, tuple(g for g in gates if g))
        if t.tool_type == "mcp" and t.server is not None:
            mcp_tools[(t.server.name, t.remote_name)] = t.tool_id
    servers = dict(MCPServer.objects.values_list("name", "config"))
    env = dict(EnvVar.objects.values_list("key", "value"))
    return Snapshot(models=models, tools=tools, mcp_tools=mcp_tools, servers=servers, env=env)


def drop() -> None:
    """Forget the snapshot in this process (the next read loads a new one)."""
    global _current, _generation
    with _lock:
        _current = None
        _generation += 1


def changed() -> None:
    """A registry row changed: drop the snapshot here now, and everywhere once committed."""
    drop()
    transaction.on_commit(_announce)


def _announce() -> None:
    drop()  # again: a read between the write and the commit may have kept the old rows
    if settings.REDIS_URL:
        bus.broadcast({"type": REGISTRY_CHANGED})
    else:
        _write_stamp()


# ---- the stamp file (workers on one machine without Redis) ---------------------------------------


def _stamp_path() -> str:
    return _stamp_in(str(settings.AGENTSITE["DATA_DIR"]))


@lru_cache(maxsize=8)  # read several times per request: joined once per data dir, not each time
def _stamp_in(data_dir: str) -> str:
    return os.path.join(data_dir, "registry.stamp")


def _read_stamp() -> tuple[int, int] | None:
    """Which stamp file is in place: every write replaces it with a new file, so its inode and
    modification time tell one write from the next (one stat, not an open and a read: this is
    checked on every request)."""
    if settings.REDIS_URL:
        return None
    look, now = _look.get(), time.monotonic()
    if look is not None and now - look.at < STAMP_LOOK_S:
        return look.stamp
    try:
        found = os.stat(_stamp_path())
        stamp: tuple[int, int] | None = found.st_ino, found.st_mtime_ns
    except OSError:
        stamp = None
    if look is not None:
        look.at, look.stamp = now, stamp
    return stamp


@dataclass(slots=True)
class _Look:
    at: float = float("-inf")
    stamp: tuple[int, int] | None = None


# A request reads the snapshot several times (its caller's key, the model, the tools, access,
# quotas), each read a stat of the stamp file (about 12 µs each on a virtual machine). Within one
# request the file is looked at again only after this long. A shared holder, not the value: the
# request's threads and tasks run in copies of its context.
STAMP_LOOK_S = 1.0
_look: ContextVar[_Look | None] = ContextVar("registry_stamp_look", default=None)


@contextmanager
def one_look_per_request() -> Iterator[None]:
    """Within it (one HTTP request), a change another process made through the stamp file is seen
    as of the request's start, or up to ``STAMP_LOOK_S`` later; this process's own changes at once."""
    token = _look.set(_Look())
    try:
        yield
    finally:
        _look.reset(token)


def _write_stamp() -> None:
    # A new file each time, moved over the old one atomically: readers compare its inode and
    # modification time (the token inside only makes each write's content differ too).
    path = Path(_stamp_path())
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}")
    partial.write_text(secrets.token_hex(8))
    os.replace(partial, path)


# ---- wiring ------------------------------------------------------------------------------------------


def _on_change(**kwargs: Any) -> None:
    changed()


def install() -> None:
    """Connect the signals that drop the snapshot (``RegistryConfig.ready``)."""
    for sender in (LLMModel, Tool, MCPServer, Skill, EnvVar, Group):
        post_save.connect(_on_change, sender=sender, dispatch_uid=f"registry-cache-save-{sender.__name__}")
        post_delete.connect(_on_change, sender=sender, dispatch_uid=f"registry-cache-delete-{sender.__name__}")
    for through in (LLMModel.allowed_groups.through, Tool.allowed_groups.through, MCPServer.allowed_groups.through,
                    Skill.allowed_groups.through, get_user_model().groups.through):
        m2m_changed.connect(_on_change, sender=through, dispatch_uid=f"registry-cache-m2m-{through.__name__}")
    bus.on(REGISTRY_CHANGED)(lambda message: drop())
    bus.on_resync(drop)
