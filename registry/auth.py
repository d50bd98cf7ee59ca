"""Bearer API-key authentication for /v1 (only a hash of each key is stored)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from .models import ApiKey, hash_api_key

BAD_KEY_MESSAGE = "Invalid or revoked API key."
# Don't write last_used_at on every request: once a minute is precise enough and spares the DB.
_LAST_USED_GRANULARITY = timedelta(seconds=60)


def user_for_api_key(plaintext: str):  # noqa: ANN201 (returns a User or None)
    key = ApiKey.objects.select_related("user").filter(key_hash=hash_api_key(plaintext), is_active=True).first()
    if key is None or not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_GRANULARITY:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key.user


def bearer_token(header: str) -> str | None:
    parts = header.split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    return None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):  # noqa: ANN001, ANN201
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        token = bearer_token(header)
        if token is None:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'.")
        user = user_for_api_key(token)
        if user is None:
            raise exceptions.AuthenticationFailed(BAD_KEY_MESSAGE)
        return user, None

    def authenticate_header(self, request) -> str:  # noqa: ANN001
        return 'Bearer realm="api"'


class IsStaffOrReadOnly(permissions.BasePermission):
    """Registries: any authenticated user reads; only staff write."""

    def has_permission(self, request, view) -> bool:  # noqa: ANN001
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or request.user.is_staff


class IsStaff(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:  # noqa: ANN001
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
