"""The engine's errors: specific kinds of the one domain error (``core.errors``, framework-free).

Each carries the stable ``code`` and HTTP ``status`` of the API's envelope, so the HTTP layer
maps them without knowing the engine's internals.
"""

from __future__ import annotations

from core.errors import DomainError, InvalidRequest, NotFound, ValidationFailed

__all__ = [
    "DomainError", "InvalidRequest", "ValidationFailed", "NotFound", "UnsupportedInput", "InputTooLarge",
    "InvalidArguments", "TemplateVariablesMissing", "ModelNotFound", "ToolNotFound", "TemplateNotFound",
    "ModelError", "ModelUnavailable", "ModelTimeout", "ToolError",
]


class UnsupportedInput(InvalidRequest):
    code = "unsupported_input"


class InputTooLarge(InvalidRequest):
    code = "input_too_large"


class InvalidArguments(InvalidRequest):
    code = "invalid_arguments"


class TemplateVariablesMissing(InvalidRequest):
    code = "template_variables_missing"


class ModelNotFound(NotFound):
    code = "model_not_found"


class ToolNotFound(NotFound):
    code = "tool_not_found"


class TemplateNotFound(NotFound):
    code = "template_not_found"


class ModelError(DomainError):
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


class ToolError(DomainError):
    """A tool failed. The tool loop turns it into an error result for the model."""

    code = "tool_error"
    status = 502
