"""Account services: API keys and the users they belong to."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from core.errors import NotFound

from .models import KEY_PREFIX, ApiKey, Preferences, hash_api_key

# Don't write last_used_at on every request: once a minute is precise enough and spares the DB.
_LAST_USED_GRANULARITY = timedelta(seconds=60)


KEY_NOT_FOUND = "No API key with id {key_id}."
MAX_ID = 2**63 - 1  # a larger id in the URL is no key (and would overflow the database's integer)


def api_key_create(*, user: Any, name: str = "", expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """Create a key; the plaintext is returned once and never stored. An ``expires_at`` already
    past makes a key that is refused from the start."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        user=user, name=name, prefix=plaintext[:10], key_hash=hash_api_key(plaintext), expires_at=expires_at
    )
    return key, plaintext


def api_keys_of(*, user: Any) -> QuerySet[ApiKey]:
    """The user's keys that still work or will (revoked ones are kept only for the records)."""
    return ApiKey.objects.filter(user=user, is_active=True).order_by("-created_at")


def api_key_revoke(*, user: Any, key_id: int) -> None:
    """Revoke one of ``user``'s keys. Every worker reads keys from the database on each request,
    so the key is refused at once everywhere; another user's key is not found."""
    if not 0 < key_id <= MAX_ID or not ApiKey.objects.filter(pk=key_id, user=user, is_active=True).update(is_active=False):
        raise NotFound(KEY_NOT_FOUND.format(key_id=key_id))


def user_for_api_key(plaintext: str) -> Any:
    """The active owner of an active, unexpired key, or None; notes when the key was last used.

    The user comes back with ``api_key_id`` set (``api_key_id_of``), so that what the request
    does can be counted against the key it came with.
    """
    key = ApiKey.objects.select_related("user").filter(key_hash=hash_api_key(plaintext), is_active=True).first()
    if key is None or not key.user.is_active:
        return None
    now = timezone.now()
    if key.expires_at is not None and key.expires_at <= now:
        return None
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_GRANULARITY:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    user: Any = key.user
    user.api_key_id = key.pk
    return user


def api_key_id_of(user: Any) -> int | None:
    """The id of the API key ``user`` authenticated with; None for a browser session."""
    key_id = getattr(user, "api_key_id", None)
    return int(key_id) if key_id is not None else None


def default_model_of(user: Any) -> str:
    """The model the user chose to start new chats with ("" = none chosen)."""
    return Preferences.objects.filter(user=user).values_list("default_model_id", flat=True).first() or ""


def default_model_set(*, user: Any, model_id: str) -> None:
    Preferences.objects.update_or_create(user=user, defaults={"default_model_id": model_id})
