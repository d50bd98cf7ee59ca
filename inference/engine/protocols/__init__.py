"""Protocol adapters, one module per wire protocol, looked up by ``ModelConfig.api_protocol``.

Adding a protocol = one module with a ``ProtocolAdapter`` subclass + one ``ADAPTERS`` line.
"""

from __future__ import annotations

from ..errors import InvalidRequest
from ..types import ModelConfig
from .base import ProtocolAdapter, RoundResult
from .ollama import OllamaAdapter
from .openai import OpenAIAdapter

__all__ = ["ADAPTERS", "ProtocolAdapter", "RoundResult", "get_adapter"]

UNKNOWN_PROTOCOL = "unknown api_protocol {protocol!r}; expected one of: {known}"

ADAPTERS: dict[str, type[ProtocolAdapter]] = {
    "openai": OpenAIAdapter,
    "ollama": OllamaAdapter,
}


def get_adapter(model: ModelConfig) -> ProtocolAdapter:
    try:
        cls = ADAPTERS[model.api_protocol]
    except KeyError:
        raise InvalidRequest(UNKNOWN_PROTOCOL.format(protocol=model.api_protocol, known=", ".join(ADAPTERS))) from None
    return cls(model)
