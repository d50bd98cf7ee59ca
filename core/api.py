"""The one place that turns errors into the API's envelope: ``{"error": {"code", "message", "detail"}}``.

Domain errors (``core.errors``, the engine's included), DRF's exceptions and Django's own
(404, permission, database integrity) all leave through here, from DRF views
(``exception_handler``), from the async inference views (``error_response``) and from Django's
404/500 handlers.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import DataError, IntegrityError
from django.http import Http404, HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from .errors import DomainError
from .secrets import scrub, scrub_data

log = logging.getLogger(__name__)

_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_json",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.Throttled: "rate_limited",
}


class ScrubbingJSONRenderer(JSONRenderer):
    """Every DRF answer scrubbed of known secrets: a stored MCP error, a connect failure's
    detail or a tool's result may quote one (core/secrets.py)."""

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return super().render(scrub_data(data), accepted_media_type, renderer_context)


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The envelope; its text scrubbed, since a message may quote what an upstream said."""
    return {"error": {"code": code, "message": scrub(message), "detail": scrub_data(detail or {})}}


def error_response(code: str, message: str, status: int, detail: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, detail), status=status)


def domain_error_response(exc: DomainError) -> JsonResponse:
    return JsonResponse(scrub_data(exc.to_dict()), status=exc.status, headers=exc.headers())


def validation_error_body(detail: Any) -> dict[str, Any]:
    """DRF's nested validation detail as the envelope: the first problem becomes the message."""
    flat = _flatten(detail)
    if isinstance(flat, list):
        flat = {"non_field_errors": flat}
    return error_body("validation_error", _first_message(flat) or "Invalid input.", flat)


MALFORMED_BODY = "The request body could not be parsed: {reason}"


def _is_json(context: dict[str, Any]) -> bool:
    request = context.get("request")
    content_type = str(getattr(request, "content_type", "") or "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: every known failure in the envelope; anything else is a 500."""
    if isinstance(exc, DomainError):
        return Response(scrub_data(exc.to_dict()), status=exc.status, headers=exc.headers())
    # A multipart body Django cannot parse: a bad boundary or encoding (DRF's ParseError, below),
    # or too many fields or files (Django raises these as SuspiciousOperation: a bare HTML 400).
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("request_too_large", "Request body is too large."), status=413)
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent, MultiPartParserError)):
        return Response(error_body("malformed_body", MALFORMED_BODY.format(reason=exc)), status=400)
    if isinstance(exc, exceptions.ParseError) and not _is_json(context):
        return Response(error_body("malformed_body", MALFORMED_BODY.format(reason=exc.detail)), status=400)
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
        return Response(validation_error_body(exc.detail), status=400)
    if isinstance(exc, exceptions.APIException):
        headers: dict[str, str] = {}
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]  # set by DRF's APIView
        wait = getattr(exc, "wait", None)
        if wait:
            headers["Retry-After"] = str(int(wait))
        message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else "Request failed."
        return Response(error_body(code, message), status=exc.status_code, headers=headers)
    return None  # unexpected: let Django log it and answer 500 (handler500 keeps the shape)


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {k: _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten(v) for v in detail]
    return str(detail)


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


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response("not_found", "Not found.", 404)


def json_500(request: HttpRequest) -> JsonResponse:
    return error_response("server_error", "Internal server error.", 500)
