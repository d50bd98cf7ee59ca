"""How a request says who it is: a Bearer API key, or a browser session (with CSRF).

Under ASGI the guard in front of ``/v1/`` (``agentsite/guard.py``) has already identified the
caller from the headers (``scope["agentsite.user"]``); these helpers take that answer when it is
there and otherwise (Django's test client, WSGI) check the same credentials themselves.
``ApiKeyAuthentication`` serves the DRF views; ``arequest_user`` the async inference views.
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

from core.db import db_async
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
    if token is None:
        raise AuthenticationFailed(BAD_HEADER_MESSAGE)
    user = user_for_api_key(token)
    if user is None:
        raise AuthenticationFailed(BAD_KEY_MESSAGE)
    return user


def known_user(request: HttpRequest) -> Any:
    """The caller the ASGI guard identified, if this request came through it."""
    return getattr(request, "scope", {}).get("agentsite.user")


async def arequest_user(request: HttpRequest) -> Any:
    """The caller of an async view: the Bearer key's owner, or the session user (CSRF-checked)."""
    header = request.headers.get("Authorization")
    if header:
        return known_user(request) or await db_async(key_user)(header)
    return await asession_user(request)


async def asession_user(request: HttpRequest) -> Any:
    """The logged-in browser user, with the CSRF check DRF applies to session auth."""
    user = known_user(request)
    if user is None:
        if not hasattr(request, "session"):  # the hot path has no session middleware: load it here
            engine = import_module(settings.SESSION_ENGINE)
            request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
        user = await aget_user(request)
    if not user.is_authenticated:
        raise NotAuthenticated(NOT_AUTHENTICATED)
    check = CSRFCheck(lambda req: HttpResponse())
    check.process_request(request)
    if check.process_view(request, None, (), {}) is not None:  # type: ignore[arg-type]  # no view to check, as in DRF
        raise DomainError(CSRF_FAILED, code="permission_denied", status=403)
    return user


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        if bearer_token(header) is None:
            raise exceptions.AuthenticationFailed(BAD_HEADER_MESSAGE)
        known = known_user(request._request)
        if known is not None:
            return known, None
        try:
            return key_user(header), None
        except AuthenticationFailed:
            raise exceptions.AuthenticationFailed(BAD_KEY_MESSAGE) from None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
