"""The per-minute request counter every worker shares: Redis when ``REDIS_URL`` is set, else
the database (a row per user and minute). Never a per-process counter: a user spreading
requests over workers must meet the same limit.
"""

from __future__ import annotations

import logging
import threading

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from .models import RequestWindow

log = logging.getLogger(__name__)

KEY = "agentsite:rpm:{user}:{minute}"
_client: redis.Redis | None = None
_client_lock = threading.Lock()


def _redis() -> redis.Redis | None:
    global _client
    if not settings.REDIS_URL:
        return None
    with _client_lock:
        if _client is None:
            _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        return _client


def take(*, user_id: int, minute: int, limit: int) -> int | None:
    """Count one request in ``minute`` unless ``limit`` is reached: None if taken, else the count
    that refused it (a refused request does not count, so retrying does not push the window)."""
    if limit <= 0:
        return 0
    client = _redis()
    if client is not None:
        key = KEY.format(user=user_id, minute=minute)
        try:
            pipe = client.pipeline()
            pipe.incr(key)
            pipe.expire(key, 120)
            count = int(pipe.execute()[0])
            if count > limit:
                client.decr(key)
                return count - 1
            return None
        except redis.RedisError as exc:
            # Availability over precision: a Redis outage must not stop every run.
            log.warning("request counter unavailable, not rate limiting: %s", exc.__class__.__name__)
            return None
    return _take_db(user_id=user_id, minute=minute, limit=limit)


def _take_db(*, user_id: int, minute: int, limit: int) -> int | None:
    with transaction.atomic():
        # The conditional update is one atomic statement: concurrent requests cannot both pass.
        if RequestWindow.objects.filter(user_id=user_id, minute=minute, count__lt=limit).update(count=F("count") + 1):
            return None
        try:
            with transaction.atomic():
                RequestWindow.objects.create(user_id=user_id, minute=minute, count=1)
            RequestWindow.objects.filter(user_id=user_id, minute__lt=minute - 1).delete()  # old windows
            return None
        except IntegrityError:  # the window exists: it is full, or another request just made it
            if RequestWindow.objects.filter(user_id=user_id, minute=minute, count__lt=limit).update(count=F("count") + 1):
                return None
            return limit
