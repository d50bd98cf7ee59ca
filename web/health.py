"""Health at a glance for the console's index: can each model server be reached, are the MCP
servers up, does the bash sandbox work. Cheap on purpose: a TCP connect per distinct server
(no model call), the MCP status the connections record, and the sandbox probe the engine
caches; the whole answer is kept for a short while, so reloading the index costs nothing."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from inference.engine import probe_sandbox
from inference.services import get_runtime
from registry.env_store import env_lookup
from registry.models import LLMModel, MCPServer, MCPStatus

CONNECT_TIMEOUT_S = 0.5
CACHE_S = 30.0
_cache: dict[str, Any] = {}


@dataclass(frozen=True)
class Check:
    label: str
    ok: bool
    detail: str


def _reachable(base: str) -> bool:
    url = urlsplit(base)
    if not url.hostname:
        return False
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def _resolved(base: str) -> str:
    """``${VAR}`` in a base URL, as a run would resolve it (unknown: left as it is)."""
    if base.startswith("${") and base.endswith("}"):
        return env_lookup(base[2:-1]) or base
    return base


def _models() -> Check:
    bases = sorted({_resolved(b) for b in LLMModel.objects.filter(enabled=True).values_list("api_base", flat=True)})
    if not bases:
        return Check("Model servers", False, "no model is registered")
    with ThreadPoolExecutor(max_workers=min(8, len(bases))) as pool:
        up = dict(zip(bases, pool.map(_reachable, bases), strict=True))
    down = [b for b, ok in up.items() if not ok]
    detail = f"{len(bases) - len(down)} of {len(bases)} reachable" + (f"; not: {', '.join(down[:3])}" if down else "")
    return Check("Model servers", not down, detail)


def _mcp() -> Check:
    servers = list(MCPServer.objects.values_list("name", "status"))
    if not servers:
        return Check("MCP servers", True, "none registered")
    failing = [name for name, status in servers if status == MCPStatus.ERROR]
    up = sum(1 for _, status in servers if status == MCPStatus.CONNECTED)
    detail = f"{up} of {len(servers)} connected" + (f"; failing: {', '.join(failing[:3])}" if failing else "")
    return Check("MCP servers", not failing, detail)


def _sandbox() -> Check:
    conf = settings.AGENTSITE
    if not conf["BASH_ENABLED"]:
        return Check("bash sandbox", True, "bash is off")
    if conf["BASH_UNSANDBOXED"]:
        return Check("bash sandbox", False, "bash runs WITHOUT a sandbox (AGENTSITE_BASH_UNSANDBOXED=1)")
    probe = probe_sandbox(get_runtime(conf).tool_settings)  # bash's settings need a restart: these are they
    return Check("bash sandbox", probe.usable, "bubblewrap works" if probe.usable else probe.reason)


def console_health() -> list[Check]:
    """The checks, from a cache of ``CACHE_S`` seconds."""
    now = time.monotonic()
    if _cache.get("at", -CACHE_S) + CACHE_S > now:
        checks: list[Check] = _cache["checks"]
        return checks
    checks = [_models(), _mcp(), _sandbox()]
    _cache.update(at=now, checks=checks)
    return checks
