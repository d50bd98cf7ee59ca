"""Account services: API keys and the users they belong to."""

from __future__ import annotations

import asyncio
import copy
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from core.db import close_broken_connections
from core.errors import NotFound
from registry import cache

from .models import KEY_PREFIX, ApiKey, Preferences, hash_api_key

# Don't write last_used_at on every request: once a minute is precise enough and spares the DB.
_LAST_USED_GRANULARITY = timedelta(seconds=60)


KEY_NOT_FOUND = "No API key with id {key_id}."
KEYS_PART = "api_keys"
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
    """Revoke one of ``user``'s keys: refused at once by this worker, and by every other one as
    soon as the registry's change message reaches it (``known_key_user``); another user's key is
    not found."""
    if not 0 < key_id <= MAX_ID or not ApiKey.objects.filter(pk=key_id, user=user, is_active=True).update(is_active=False):
        raise NotFound(KEY_NOT_FOUND.format(key_id=key_id))
    cache.changed()  # an update() sends no signal


@dataclass(slots=True)
class _KnownKey:
    """An active key of an active user, as last read from the database."""

    key_id: int
    owner: Any  # every request gets its own copy (views set attributes on their user)
    expires_at: datetime | None
    last_used_at: datetime | None


def _known_keys(snapshot: cache.Snapshot) -> dict[str, _KnownKey]:
    # Kept with the registry snapshot, so it is dropped with it: any save of a key or a user
    # (``accounts.apps``), a revocation, the bus's resync, and never trusted while this worker
    # cannot hear other workers' changes. Only keys that worked are kept: a stranger's guesses
    # cost a query each, as before, and no memory.
    return snapshot.part(KEYS_PART, dict)


def _owner_of(known: _KnownKey, now: datetime) -> Any:
    if known.expires_at is not None and known.expires_at <= now:
        return None
    user = copy.copy(known.owner)
    user.api_key_id = known.key_id
    return user


def _stale(known: _KnownKey, now: datetime) -> bool:
    return known.last_used_at is None or now - known.last_used_at > _LAST_USED_GRANULARITY


def _note_used(key_id: int, now: datetime) -> None:
    ApiKey.objects.filter(pk=key_id).update(last_used_at=now)


def user_for_api_key(plaintext: str) -> Any:
    """The active owner of an active, unexpired key, or None; notes when the key was last used
    (sync: reads the database unless the key is known).

    The user comes back with ``api_key_id`` set (``api_key_id_of``), so that what the request
    does can be counted against the key it came with.
    """
    digest, now = hash_api_key(plaintext), timezone.now()
    # Inside a transaction nothing read may be remembered (it may be rolled back), and loading
    # a whole snapshot only to use none of it would cost more than the one query.
    snapshot = cache.current() if connection.in_atomic_block else cache.snapshot()
    keys = _known_keys(snapshot) if snapshot is not None else {}
    known = keys.get(digest)
    if known is None:
        key = ApiKey.objects.select_related("user").filter(key_hash=digest, is_active=True).first()
        if key is None or not key.user.is_active:
            return None
        known = _KnownKey(key.pk, key.user, key.expires_at, key.last_used_at)
        if not connection.in_atomic_block:
            keys[digest] = known
    user = _owner_of(known, now)
    if user is not None and _stale(known, now):
        known.last_used_at = now
        _note_used(known.key_id, now)
    return user


def known_key_user(plaintext: str) -> Any:
    """``user_for_api_key`` for a key this worker already knows, without touching the database
    (so on the event loop): the owner, or None when the key is not known here (ask
    ``user_for_api_key`` then). Noting the use, when due, is handed to a pool thread."""
    snapshot = cache.current()
    known = _known_keys(snapshot).get(hash_api_key(plaintext)) if snapshot is not None else None
    if known is None:
        return None
    now = timezone.now()
    user = _owner_of(known, now)
    if user is not None and _stale(known, now):
        known.last_used_at = now
        asyncio.get_running_loop().run_in_executor(None, _note_used_pooled, known.key_id, now)
    return user


def _note_used_pooled(key_id: int, now: datetime) -> None:
    try:
        _note_used(key_id, now)
    finally:
        close_broken_connections()


def api_key_id_of(user: Any) -> int | None:
    """The id of the API key ``user`` authenticated with; None for a browser session."""
    key_id = getattr(user, "api_key_id", None)
    return int(key_id) if key_id is not None else None


def default_model_of(user: Any) -> str:
    """The model the user chose to start new chats with ("" = none chosen)."""
    return Preferences.objects.filter(user=user).values_list("default_model_id", flat=True).first() or ""


def default_model_set(*, user: Any, model_id: str) -> None:
    Preferences.objects.update_or_create(user=user, defaults={"default_model_id": model_id})
