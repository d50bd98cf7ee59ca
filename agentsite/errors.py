"""One error shape for the whole API: {"error": {"code", "message", "detail"}}."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DataError, IntegrityError
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from inference.engine.errors import EngineError

log = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """Raised by services/views for a specific code and status."""

    def __init__(self, code: str, message: str, *, status_code: int = 400, detail: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status_code = status_code
        self.extra = detail or {}


def error_body(code: str, message: str, detail: Any = None) -> dict:
    return {"error": {"code": code, "message": message, "detail": detail or {}}}


def error_response(code: str, message: str, status_code: int, detail: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, detail), status=status_code)


_DRF_CODES = {
    exceptions.ParseError: ("malformed_json", None),
    exceptions.NotAuthenticated: ("not_authenticated", None),
    exceptions.AuthenticationFailed: ("authentication_failed", None),
    exceptions.PermissionDenied: ("permission_denied", None),
    exceptions.NotFound: ("not_found", None),
    exceptions.MethodNotAllowed: ("method_not_allowed", None),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", None),
    exceptions.NotAcceptable: ("not_acceptable", None),
    exceptions.Throttled: ("rate_limited", None),
}


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {k: _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten(v) for v in detail]
    return str(detail)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, ApiError):
        return Response(error_body(exc.code, exc.message, exc.extra), status=exc.status_code)
    if isinstance(exc, EngineError):
        return Response(exc.to_dict(), status=exc.status)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", str(exc) or "Not found."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_body("permission_denied", "You do not have permission to do this."), status=403)
    if isinstance(exc, DataError):  # e.g. a NUL byte in an id, which PostgreSQL text cannot hold
        log.info("data error mapped to 400: %s", exc)
        return Response(error_body("invalid_input", "The input cannot be stored or looked up (e.g. a NUL byte)."), status=400)
    if isinstance(exc, IntegrityError):
        log.info("integrity error mapped to 409: %s", exc)
        return Response(error_body("conflict", "This conflicts with an existing record."), status=409)
    if isinstance(exc, exceptions.ValidationError):
        detail = _flatten(exc.detail)
        if isinstance(detail, list):
            detail = {"non_field_errors": detail}
        first = _first_message(detail)
        return Response(error_body("validation_error", first or "Invalid input.", detail), status=400)
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, (c, _) in _DRF_CODES.items() if isinstance(exc, cls)), "error")
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else "Request failed."
        return Response(error_body(code, message), status=exc.status_code, headers=headers)
    return None  # unexpected: let Django log it and answer 500 (handler500 keeps the shape)


def _first_message(detail: Any, prefix: str = "") -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            msg = _first_message(value, key if key != "non_field_errors" else "")
            if msg:
                return msg
        return ""
    if isinstance(detail, list):
        return _first_message(detail[0], prefix) if detail else ""
    return f"{prefix}: {detail}" if prefix else str(detail)


def json_404(request, exception=None) -> JsonResponse:  # noqa: ANN001 (Django handler signature)
    return error_response("not_found", "Not found.", 404)


def json_500(request) -> JsonResponse:  # noqa: ANN001
    return error_response("server_error", "Internal server error.", 500)
