"""Protocol adapters, one module per wire protocol, looked up by ``ModelConfig.api_protocol``.

Adding a protocol = one module with a ``ProtocolAdapter`` subclass + one ``ADAPTERS`` line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidRequest
from ..types import ModelConfig
from .base import ProtocolAdapter, RoundResult
from .ollama import OllamaAdapter
from .openai import OpenAIAdapter
from .options import option_problems

__all__ = [
    "ADAPTERS", "ProtocolAdapter", "RoundResult", "adapter_class", "get_adapter", "option_problems_for", "protocol_choices",
]

UNKNOWN_PROTOCOL = "unknown api_protocol {protocol!r}; expected one of: {known}"

ADAPTERS: dict[str, type[ProtocolAdapter]] = {
    "openai": OpenAIAdapter,
    "ollama": OllamaAdapter,
}


def adapter_class(protocol: str) -> type[ProtocolAdapter]:
    try:
        return ADAPTERS[protocol]
    except KeyError:
        raise InvalidRequest(UNKNOWN_PROTOCOL.format(protocol=protocol, known=", ".join(ADAPTERS))) from None


def get_adapter(model: ModelConfig) -> ProtocolAdapter:
    return adapter_class(model.api_protocol)(model)


def protocol_choices() -> list[tuple[str, str]]:
    """``(api_protocol, label)`` pairs, for model fields, serializers and pickers."""
    return [(name, cls.label or name) for name, cls in ADAPTERS.items()]


def option_problems_for(protocol: str, options: Mapping[str, Any]) -> dict[str, str]:
    """``{name: problem}`` for the option names ``protocol`` knows whose value has the wrong type."""
    return option_problems(adapter_class(protocol).option_types, options)
