"""The per-minute request counter every worker shares: Redis when ``REDIS_URL`` is set, else
the database (a row per user and minute). Never a per-process counter: a user spreading
requests over workers must meet the same limit.

If Redis cannot be reached the database counts instead, so a limit never silently stops
holding (docs/security.md, "Rate limits when Redis is down"). After a failure Redis is left
alone for ``REDIS_RETRY_S``, so an outage does not add a connect timeout to every request.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from .models import RequestWindow

log = logging.getLogger(__name__)

KEY = "agentsite:rpm:{user}:{minute}"
REDIS_RETRY_S = 5.0


class _Redis:
    """This process's client for ``REDIS_URL``, and until when it is known to be unreachable."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.client: redis.Redis | None = None
        self.down_until = 0.0
        self.lock = threading.Lock()

    def usable(self) -> redis.Redis | None:
        url = settings.REDIS_URL
        if not url:
            return None
        with self.lock:
            if self.client is None or self.url != url:
                self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
                self.url, self.down_until = url, 0.0
            return self.client if time.monotonic() >= self.down_until else None

    def failed(self, exc: redis.RedisError) -> None:
        self.down_until = time.monotonic() + REDIS_RETRY_S
        log.warning("request counter: Redis unreachable (%s), counting in the database", exc.__class__.__name__)


_redis = _Redis()


def take(*, user_id: int, minute: int, limit: int) -> int | None:
    """Count one request in ``minute`` unless ``limit`` is reached: None if taken, else the count
    that refused it (a refused request does not count, so retrying does not push the window)."""
    if limit <= 0:
        return 0
    client = _redis.usable()
    if client is not None:
        try:
            return _take_redis(client, user_id=user_id, minute=minute, limit=limit)
        except redis.RedisError as exc:
            _redis.failed(exc)
    return _take_db(user_id=user_id, minute=minute, limit=limit)


def _take_redis(client: redis.Redis, *, user_id: int, minute: int, limit: int) -> int | None:
    key = KEY.format(user=user_id, minute=minute)
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count = int(pipe.execute()[0])
    if count > limit:
        client.decr(key)
        return count - 1
    return None


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
