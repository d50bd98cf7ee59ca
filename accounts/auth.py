"""How a request says who it is: a Bearer API key, or a browser session (with CSRF).

``ApiKeyAuthentication`` serves the DRF views; ``request_user`` serves the async inference views,
which run outside DRF and Django's middleware and check the same credentials themselves.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import aget_user
from django.http import HttpRequest, HttpResponse
from rest_framework import authentication, exceptions
from rest_framework.authentication import CSRFCheck
from rest_framework.request import Request

from core.errors import DomainError

from .services import user_for_api_key

BAD_KEY_MESSAGE = "Invalid or revoked API key."
BAD_HEADER_MESSAGE = "Authorization header must be 'Bearer <api key>'."
NOT_AUTHENTICATED = "Authentication credentials were not provided."
CSRF_FAILED = "CSRF token missing or incorrect."


class AuthenticationFailed(DomainError):
    code = "authentication_failed"
    status = 401


class NotAuthenticated(DomainError):
    code = "not_authenticated"
    status = 401


def bearer_token(header: str) -> str | None:
    parts = header.split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    return None


def key_user(header: str) -> Any:
    """The owner of the Bearer key in ``header`` (sync: one query), or AuthenticationFailed."""
    token = bearer_token(header)
    user = user_for_api_key(token) if token else None
    if user is None:
        raise AuthenticationFailed(BAD_KEY_MESSAGE)
    return user


async def asession_user(request: HttpRequest) -> Any:
    """The logged-in browser user, with the CSRF check DRF applies to session auth."""
    if not hasattr(request, "session"):  # the hot path has no session middleware: load it here
        engine = import_module(settings.SESSION_ENGINE)
        request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    user = await aget_user(request)
    if not user.is_authenticated:
        raise NotAuthenticated(NOT_AUTHENTICATED)
    check = CSRFCheck(lambda req: HttpResponse())
    check.process_request(request)
    if check.process_view(request, None, (), {}) is not None:
        raise DomainError(CSRF_FAILED, code="permission_denied", status=403)
    return user


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        if bearer_token(header) is None:
            raise exceptions.AuthenticationFailed(BAD_HEADER_MESSAGE)
        try:
            return key_user(header), None
        except AuthenticationFailed:
            raise exceptions.AuthenticationFailed(BAD_KEY_MESSAGE) from None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
