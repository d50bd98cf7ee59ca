"""Login throttling: after repeated failures, a username (and the client address) is locked.

Applies to every password login (admin and chat pages) because it is an authentication
backend; counts live in Django's cache (Redis when REDIS_URL is set, so all workers agree).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest

LOCKED_MESSAGE = "Too many failed logins; try again later."


def _keys(username: str, request: HttpRequest | None) -> list[str]:
    keys = [f"login-fail:user:{username.lower()}"]
    if request is not None and request.META.get("REMOTE_ADDR"):
        keys.append(f"login-fail:ip:{request.META['REMOTE_ADDR']}")
    return keys


def is_locked(username: str, request: HttpRequest | None) -> bool:
    limit = settings.AGENTSITE["LOGIN_MAX_FAILURES"]
    return any((cache.get(k) or 0) >= limit for k in _keys(username, request))


class LockoutModelBackend(ModelBackend):
    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any):  # noqa: ANN201
        if username and is_locked(username, request):
            raise PermissionDenied(LOCKED_MESSAGE)  # stops the backend chain: no password check at all
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed)
def _count_failure(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    window = settings.AGENTSITE["LOGIN_LOCKOUT_S"]
    for key in _keys(str(credentials.get("username", "")), request):
        if cache.add(key, 1, window) is False:
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, window)


@receiver(user_logged_in)
def _reset_failures(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    cache.delete(_keys(user.get_username(), None)[0])
