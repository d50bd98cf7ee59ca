"""Engine errors. Each carries the stable ``code`` and HTTP ``status`` of API.md's envelope,
so the HTTP layer maps them without knowing the engine's internals."""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    code = "engine_error"
    status = 500

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}
        if code:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "detail": self.detail}}


class InvalidRequest(EngineError):
    code = "invalid_request"
    status = 400


class UnsupportedInput(InvalidRequest):
    code = "unsupported_input"


class InputTooLarge(InvalidRequest):
    code = "input_too_large"


class InvalidArguments(InvalidRequest):
    code = "invalid_arguments"


class TemplateVariablesMissing(InvalidRequest):
    code = "template_variables_missing"


class NotFound(EngineError):
    code = "not_found"
    status = 404


class ModelNotFound(NotFound):
    code = "model_not_found"


class ToolNotFound(NotFound):
    code = "tool_not_found"


class TemplateNotFound(NotFound):
    code = "template_not_found"


class ModelError(EngineError):
    """Raised by protocol adapters. ``retryable`` says whether trying again may help."""

    code = "model_unavailable"
    status = 502
    retryable = False


class ModelUnavailable(ModelError):
    code = "model_unavailable"
    status = 502


class ModelTimeout(ModelError):
    code = "model_timeout"
    status = 504
    retryable = True


class ToolError(EngineError):
    """A tool failed. The tool loop turns it into an error result for the model."""

    code = "tool_error"
    status = 502
