"""The one domain error type, shared by the services and the framework-free engine.

This module imports nothing from Django on purpose: the engine (``inference/engine``) raises
these errors too, and must stay usable without Django. Every error carries the stable ``code``
and HTTP ``status`` of the API's error envelope, so the HTTP layer (``core.api``) maps any of
them without knowing where it came from.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """An error a caller should see: ``{"error": {"code", "message", "detail"}}`` with ``status``."""

    code = "error"
    status = 500

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}
        if code:
            self.code = code
        if status:
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "detail": self.detail}}

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries (e.g. ``Retry-After`` on a 429)."""
        return {}


class InvalidRequest(DomainError):
    code = "invalid_request"
    status = 400


class ValidationFailed(InvalidRequest):
    """A field of the input is wrong; ``detail`` names the fields."""

    code = "validation_error"


class PermissionDenied(DomainError):
    code = "permission_denied"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409
