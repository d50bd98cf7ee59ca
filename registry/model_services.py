"""Model services that talk to model servers: detection and "test connection".

Used by both the API (``POST /v1/models/detect``) and the admin console actions. They run on
a private event loop in the calling (sync) thread: ``async_to_sync`` would borrow the server's
loop, and closing HTTP clients there would cut other users' streams.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from inference.engine import DomainError, Message, ModelConfig, expand_vars, get_adapter, run_sync

from .env_store import env_lookup
from .models import LLMModel
from .selectors import model_to_config

# ``owned_by`` in /v1/models of servers that run local models: llama.cpp, vLLM, LM Studio,
# Ollama's OpenAI-compatible API.
LOCAL_SERVER_OWNERS = frozenset({"llamacpp", "vllm", "organization_owner", "library"})
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
_FACTS_AT_ONCE = 4  # /api/show requests in flight while detecting


def is_local_server(*, api_protocol: str, api_base: str, entries: Sequence[Mapping[str, Any]] = ()) -> bool:
    """Whether a server runs models locally (where small models that write their tool calls as
    text are common): Ollama; an address on this machine or a private network; or a server
    that names itself as llama.cpp, vLLM, LM Studio or Ollama in its model list."""
    if api_protocol == "ollama":
        return True
    host = (urlsplit(api_base).hostname or "").lower()
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES) or (host and "." not in host and ":" not in host):
        return True  # a single-label name is a container or LAN host, never a hosted API
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if address.is_loopback or address.is_private or address.is_link_local:
            return True
    return any(e.get("owned_by") in LOCAL_SERVER_OWNERS for e in entries)


async def _detect(config: ModelConfig) -> list[dict[str, Any]]:
    adapter = get_adapter(config)
    entries = await adapter.list_models()
    named = [(e.get("id") or e.get("name") or e.get("model"), e) for e in entries]
    named = [(name, e) for name, e in named if name]
    gate = asyncio.Semaphore(_FACTS_AT_ONCE)

    async def facts_of(entry: Mapping[str, Any]) -> Any:
        async with gate:
            return await adapter.model_facts(entry)

    facts = await asyncio.gather(*(facts_of(e) for _, e in named))
    local = is_local_server(api_protocol=config.api_protocol, api_base=config.api_base, entries=entries)
    suggested = "auto" if local else "native"
    out = []
    for (name, e), fact in zip(named, facts, strict=True):
        details = e.get("details")
        if not isinstance(details, dict):
            details = {}
        out.append({"model_name": name, "family": details.get("family", ""), "parameter_size": details.get("parameter_size", ""),
                    "supports_vision": fact.supports_vision, "context_window": fact.context_window,
                    "tool_call_format": suggested, "registered": False})
    return out


def models_detect(*, api_protocol: str, api_base: str, api_key: str = "") -> list[dict[str, Any]]:
    """The models a server offers (Ollama ``/api/tags``, OpenAI ``/models``), marked if registered,
    with what the server says about each (``supports_vision``, ``context_window``: null when it
    says nothing) and the suggested ``tool_call_format`` ("auto" for local servers)."""
    config = ModelConfig(model_id="detect", api_protocol=api_protocol, api_base=expand_vars(api_base, env_lookup).rstrip("/"),
                         model_name="", api_key=expand_vars(api_key, env_lookup) or None, timeout_s=15)
    found = run_sync(_detect(config))
    registered = set(LLMModel.objects.filter(api_base=api_base.rstrip("/")).values_list("model_name", flat=True))
    for item in found:
        item["registered"] = item["model_name"] in registered
    return found


async def _ping(config: ModelConfig) -> tuple[bool, str]:
    started = time.perf_counter()
    try:
        result = await get_adapter(config).complete([Message(role="user", content="Reply with the word: ok")], options={})
    except DomainError as exc:
        return False, exc.message
    ms = (time.perf_counter() - started) * 1000
    return True, f"answered in {ms:.0f} ms: {result.content[:60]!r}"


def model_test_connection(*, model: LLMModel) -> tuple[bool, str]:
    """One tiny request to the model; (ok, human-readable outcome)."""
    return run_sync(_ping(model_to_config(model)))
