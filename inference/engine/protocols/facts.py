"""What a model server says about its models, for model detection (vision, context window).

Servers describe their models in different shapes; each reader takes what is offered and
leaves the rest unknown (``None``), so detection never guesses:

* llama.cpp ``/v1/models``: ``meta.n_ctx`` (the window the server runs with) and
  ``meta.n_ctx_train``; ``architecture.input_modalities``; an Ollama-style ``models`` list beside
  ``data`` whose ``capabilities`` holds ``"multimodal"`` when a projector is loaded.
* vLLM ``/v1/models``: ``max_model_len``.
* LM Studio's REST API and OpenRouter-style listings: ``type: "vlm"``, ``max_context_length``,
  ``loaded_context_length``, ``context_length``, ``architecture.input_modalities``.
* Ollama ``/api/show``: ``capabilities`` (``"vision"``), ``model_info["<arch>.context_length"]``
  and a ``num_ctx`` line in ``parameters`` (read by the Ollama adapter).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Context-window keys, best first: the window the server actually runs with before the
# window the model was trained for.
_CONTEXT_KEYS = ("n_ctx", "max_model_len", "loaded_context_length", "context_length", "context_window",
                 "max_context_length", "n_ctx_train")


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What the server said about one model; None where it said nothing."""

    supports_vision: bool | None = None
    context_window: int | None = None


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    return None


def vision_from(entry: Mapping[str, Any]) -> bool | None:
    caps = entry.get("capabilities")
    if isinstance(caps, list) and caps:
        return any(c in ("vision", "multimodal") for c in caps)
    architecture = entry.get("architecture")
    modalities = architecture.get("input_modalities") if isinstance(architecture, Mapping) else None
    if modalities is None:
        modalities = entry.get("input_modalities")
    if isinstance(modalities, list) and modalities:
        return "image" in modalities
    kind = entry.get("type")
    if kind in ("vlm", "llm"):  # LM Studio
        return kind == "vlm"
    return None


def context_from(entry: Mapping[str, Any]) -> int | None:
    sources = [entry.get("meta"), entry]
    for key in _CONTEXT_KEYS:
        for source in sources:
            if isinstance(source, Mapping):
                found = _positive_int(source.get(key))
                if found:
                    return found
    return None


def facts_from(entry: Mapping[str, Any]) -> ModelFacts:
    """The facts a model-list entry carries in any of the shapes above."""
    return ModelFacts(supports_vision=vision_from(entry), context_window=context_from(entry))
