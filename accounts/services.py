"""Account services: API keys and the users they belong to."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.utils import timezone

from .models import KEY_PREFIX, ApiKey, hash_api_key

# Don't write last_used_at on every request: once a minute is precise enough and spares the DB.
_LAST_USED_GRANULARITY = timedelta(seconds=60)


def api_key_create(*, user: Any, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; the plaintext is returned once and never stored."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(user=user, name=name, prefix=plaintext[:10], key_hash=hash_api_key(plaintext))
    return key, plaintext


def user_for_api_key(plaintext: str) -> Any:
    """The active owner of an active key, or None; notes when the key was last used."""
    key = ApiKey.objects.select_related("user").filter(key_hash=hash_api_key(plaintext), is_active=True).first()
    if key is None or not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_GRANULARITY:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key.user
