"""Model services that talk to model servers: detection and "test connection".

Used by both the API (``POST /v1/models/detect``) and the admin console actions. They run on
a private event loop in the calling (sync) thread: ``async_to_sync`` would borrow the server's
loop, and closing HTTP clients there would cut other users' streams.
"""

from __future__ import annotations

import time
from typing import Any

from inference.engine import DomainError, Message, ModelConfig, expand_vars, get_adapter, run_sync

from .env_store import env_lookup
from .models import LLMModel
from .selectors import model_to_config


async def _detect(config: ModelConfig) -> list[dict[str, Any]]:
    entries = await get_adapter(config).list_models()
    out = []
    for e in entries:
        name = e.get("id") or e.get("name") or e.get("model")
        if not name:
            continue
        details = e.get("details")
        if not isinstance(details, dict):
            details = {}
        out.append({"model_name": name, "family": details.get("family", ""), "parameter_size": details.get("parameter_size", ""),
                    "registered": False})
    return out


def models_detect(*, api_protocol: str, api_base: str, api_key: str = "") -> list[dict[str, Any]]:
    """The models a server offers (Ollama ``/api/tags``, OpenAI ``/models``), marked if registered."""
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
