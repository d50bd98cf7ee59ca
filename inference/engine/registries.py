"""In-memory registries, so the engine works as a plain Python SDK without a database."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from .errors import ModelNotFound, TemplateNotFound, ToolNotFound
from .tools.functions import tool_config_of
from .types import ModelConfig, ToolConfig


class ModelSource(Protocol):
    def get(self, model_id: str) -> ModelConfig: ...


class ToolSource(Protocol):
    def get_many(self, tool_ids: Iterable[str]) -> list[ToolConfig]: ...
    def all(self) -> list[ToolConfig]: ...


class TemplateSource(Protocol):
    def get_content(self, name: str) -> str: ...


class ModelRegistry:
    def __init__(self, models: Iterable[ModelConfig] = ()) -> None:
        self._models: dict[str, ModelConfig] = {}
        for m in models:
            self.register(m)

    def register(self, model: ModelConfig) -> ModelConfig:
        self._models[model.model_id] = model
        return model

    def get(self, model_id: str) -> ModelConfig:
        model = self._models.get(model_id)
        if model is None or not model.enabled:
            raise ModelNotFound(f"No model with id {model_id!r}.")
        return model


class ToolRegistry:
    def __init__(self, tools: Iterable[Any] = ()) -> None:
        self._tools: dict[str, ToolConfig] = {}
        for t in tools:
            self.register(t)

    def register(self, tool: Any) -> ToolConfig:
        """A ToolConfig, a ``@tool``-decorated function, or any typed function."""
        config = tool_config_of(tool)
        self._tools[config.tool_id] = config
        return config

    def get_many(self, tool_ids: Iterable[str]) -> list[ToolConfig]:
        wanted = list(dict.fromkeys(tool_ids))
        missing = [t for t in wanted if t not in self._tools or not self._tools[t].enabled]
        if missing:
            raise ToolNotFound(f"No enabled tool with id {missing[0]!r}.", detail={"missing": missing})
        return [self._tools[t] for t in wanted]

    def all(self) -> list[ToolConfig]:
        return [t for t in self._tools.values() if t.enabled]


class TemplateRegistry:
    def __init__(self, templates: dict[str, str] | None = None) -> None:
        self._templates = dict(templates or {})

    def register(self, name: str, content: str) -> None:
        self._templates[name] = content

    def get_content(self, name: str) -> str:
        try:
            return self._templates[name]
        except KeyError:
            raise TemplateNotFound(f"No prompt template {name!r}.") from None
