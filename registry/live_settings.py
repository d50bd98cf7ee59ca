"""The ``AGENTSITE_*`` settings a value in the env store changes at once (issue 18).

Every ``AGENTSITE_*`` setting is read from the process environment at start-up. For the ones
in ``LIVE`` a value stored through ``/v1/env`` (or the admin) under the same name wins, in every
worker from its next run on: the values come from the registry snapshot, which every env change
drops everywhere, so reading them costs no query. A run keeps the values it began with.

Only limits that are read per run, at no cost, and that cannot widen what a run may reach are
live. The rest need a restart (``RESTART_ONLY``): the data dir, database and secrets; what the
ASGI guard checks before any thread hop (body size, message count, overload shedding), where
no snapshot may be read; the run lease, which workers must agree on; the bash sandbox and the
fetch allow-list, which stay with whoever controls the process environment; login throttling.

A live value is checked when it is stored (``validate``: ``/v1/env`` answers 400); one stored
by other means that does not parse is ignored, with a logged warning, and the start-up value
holds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings

from . import cache

log = logging.getLogger(__name__)

PREFIX = "AGENTSITE_"
MAX_SECONDS = 86_400.0  # a day: longer is a mistake, and a huge timeout overflows some waits (threading's)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise ValueError(f"must be more than 0 and at most {MAX_SECONDS:g} seconds")
    return value


def _count(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("must be 1/0, true/false, yes/no or on/off")


# Setting (its key in ``settings.AGENTSITE``; the variable is ``AGENTSITE_`` + it) -> its parser.
LIVE: Mapping[str, Callable[[str], Any]] = {
    "MAX_TOOL_ROUNDS_LIMIT": _count(0),
    "TOOL_TIMEOUT_S": _seconds,
    "MCP_CALL_TIMEOUT_S": _seconds,
    "TOOL_RESULT_MAX_CHARS": _count(0),
    "SSE_PING_S": _seconds,
    "RUN_CHECKPOINT_S": _seconds,
    "MEMORY_EXTRACTION": _boolean,
    "FETCH_MAX_BYTES": _count(1),
    "FETCH_TIMEOUT_S": _seconds,
    "AGENT_MAX_DEPTH": _count(0),
    "AGENT_TIMEOUT_S": _seconds,
}

# The variables the server reads at start-up only: one stored under such a name serves
# ``${VAR}`` references and nothing else (the admin says so).
RESTART_ONLY = frozenset(PREFIX + name for name in (
    "DATA_DIR", "MAX_BODY_MB", "MAX_MESSAGES", "MAX_INFLIGHT", "SHED_LAG_S", "RUN_LEASE_S",
    "MAX_IMAGE_BYTES", "MAX_AUDIO_BYTES", "MCP_MAX_MESSAGE_MB", "BASH_ENABLED", "BASH_UNSANDBOXED",
    "BASH_NETWORK", "BASH_TIMEOUT_S", "BASH_OUTPUT_CAP", "BASH_CPU_S", "BASH_MEMORY_MB",
    "BASH_MAX_PROCS", "BASH_FILE_MB", "FETCH_ALLOW_HOSTS", "SKILL_MAX_FILES", "SKILL_MAX_BYTES",
    "LOGIN_MAX_FAILURES", "LOGIN_ADDRESS_MAX_FAILURES", "LOGIN_LOCKOUT_BASE_S", "LOGIN_LOCKOUT_S",
    "LOGIN_ATTEMPTS_DAYS", "TRUSTED_PROXIES", "SECURE_COOKIES", "HSTS_SECONDS",
))  # fmt: skip


def _setting_of(key: str) -> str | None:
    name = key.removeprefix(PREFIX)
    return name if key.startswith(PREFIX) and name in LIVE else None


def is_live(key: str) -> bool:
    """Whether a value stored under ``key`` changes the server's setting of that name."""
    return _setting_of(key) is not None


def validate(key: str, value: str) -> None:
    """Raise ``ValueError`` (a message naming ``key``) if ``key`` is a live setting and ``value``
    is not a valid value for it; any other key takes any value."""
    name = _setting_of(key)
    if name is None:
        return
    try:
        LIVE[name](value.strip())
    except ValueError as exc:
        raise ValueError(f"{key} {exc} (got {value!r}).") from None


def _stored(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in env.items():
        name = _setting_of(key)
        if name is None:
            continue
        try:
            out[name] = LIVE[name](value.strip())
        except ValueError as exc:  # stored without ``validate`` (the shell, a raw write)
            log.warning("Ignoring the stored %s: it %s (got %r); the start-up value holds.", key, exc, value)
    return out


def current() -> dict[str, Any]:
    """``settings.AGENTSITE`` with the valid live values the env store holds put over it (sync:
    reads the registry snapshot, which may load it)."""
    registry = cache.snapshot()
    return {**settings.AGENTSITE, **registry.part("live_settings", lambda: _stored(registry.env))}
