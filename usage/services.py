"""Usage writes and quota enforcement.

Every model call the server makes is written as a ``UsageRecord`` for the user whose request
(or whose session) caused it. ``quota_check`` runs before a run's first model call, in the run
lifecycle every entry point goes through; a run already going is never cut off.
"""

from __future__ import annotations

import asyncio
import math
import time as clock
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Sum
from django.utils import timezone

from core.db import db_async
from core.errors import DomainError, NotFound

from . import behind, counters
from .models import Kind, Outcome, Quota, Scope, UsageRecord
from .selectors import day_start, quota_effective

QUOTA_EXCEEDED = "Token quota of {limit} per day used up ({used} used); it resets at {resets_at}."
RATE_LIMITED = "At most {limit} requests per minute; try again in {seconds} s."
UNKNOWN_SCOPE = "Quota scope must be 'user' or 'group', not {scope!r}."
NO_SUCH_NAME = "No {scope} named {name!r}."
NO_QUOTA = "No quota for {scope} {name!r}."


class QuotaError(DomainError):
    """429 with ``Retry-After``: the caller may try again once the window resets."""

    status = 429

    def __init__(self, message: str, *, limit: int, used: int, resets_at: datetime) -> None:
        super().__init__(message, detail={"limit": limit, "used": used, "resets_at": resets_at.isoformat()})
        self.retry_after = max(1, math.ceil((resets_at - timezone.now()).total_seconds()))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class QuotaExceeded(QuotaError):
    code = "quota_exceeded"


class RateLimited(QuotaError):
    code = "rate_limited"


@dataclass(frozen=True)
class Caller:
    """Who a model call is counted against: the user, the API key (None for a browser session)
    and the agent the run was made for, if any."""

    user_id: int
    api_key_id: int | None = None
    agent: str = ""


@dataclass(frozen=True)
class ModelCallRecord:
    kind: str
    model_id: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    duration_ms: float
    outcome: str
    at: datetime


def model_call(
    *, kind: str, model_id: str, prompt_tokens: int = 0, completion_tokens: int = 0, total_tokens: int = 0,
    duration_ms: float = 0.0, outcome: str = Outcome.OK,
) -> ModelCallRecord:
    """A call that has just ended (``at`` = now)."""
    return ModelCallRecord(
        kind, model_id, prompt_tokens, completion_tokens, total_tokens or prompt_tokens + completion_tokens,
        duration_ms, outcome, timezone.now(),
    )


def usage_record(*, caller: Caller, session_id: str | None, calls: Sequence[ModelCallRecord]) -> None:
    """Write the records of ``calls`` (one INSERT for all of them)."""
    _usage_insert([(caller, session_id, calls)])


Batch = list[tuple[Caller, str | None, Sequence[ModelCallRecord]]]


def _usage_insert(batch: Batch) -> None:
    rows = [
        UsageRecord(
            user_id=caller.user_id, api_key_id=caller.api_key_id, agent=caller.agent, model_id=c.model_id,
            session_id=session_id or "", kind=c.kind if c.kind in Kind.values else Kind.CHAT,
            prompt_tokens=max(0, c.prompt_tokens), completion_tokens=max(0, c.completion_tokens),
            total_tokens=max(0, c.total_tokens), duration_ms=max(0, round(c.duration_ms)), outcome=c.outcome, at=c.at,
        )
        for caller, session_id, calls in batch
        for c in calls
    ]
    if rows:
        UsageRecord.objects.bulk_create(rows)


# ---- written behind the run (the inference hot path) ----------------------------------------------

# Records wait this long for others to join them: one INSERT per batch instead of one per run (a
# busy worker answers dozens of runs in that time). It is also what a worker that dies may lose.
BEHIND_LINGER_S = 0.05
_waiting: Batch = []
_writer: asyncio.Task[None] | None = None


def usage_record_behind(*, caller: Caller, session_id: str | None, calls: Sequence[ModelCallRecord]) -> None:
    """``usage_record`` started on the running event loop without waiting for it: the run (and
    its answer) does not wait for the INSERT, which runs in the ORM's shared pool a moment
    later, together with the records of other runs that ended meanwhile. Reads of usage in this
    worker wait for it first (``behind.settled``); another worker may see the record up to
    ``BEHIND_LINGER_S`` and an INSERT after the answer. A worker that dies in that moment loses it."""
    global _writer
    if not calls:
        return
    _waiting.append((caller, session_id, calls))
    loop = asyncio.get_running_loop()
    if _writer is None or _writer.done() or _writer.get_loop() is not loop:
        _writer = loop.create_task(_write_waiting())
        behind.track(_writer)


async def _write_waiting() -> None:
    await asyncio.sleep(BEHIND_LINGER_S)
    while _waiting:
        batch = _waiting[:]
        del _waiting[:]
        await db_async(_usage_insert)(batch)


def quota_check(*, user: Any) -> None:
    """Refuse (429) a new request of ``user`` over their token quota or request rate; count it
    against the rate otherwise. Where no quota applies this reads nothing (the registry snapshot)."""
    limits = quota_effective(user=user)
    if limits is None:
        return
    now = timezone.now()
    if limits.tokens_per_day is not None:
        start = day_start(now)
        used = UsageRecord.objects.filter(user_id=user.pk, at__gte=start).aggregate(t=Sum("total_tokens"))["t"] or 0
        if used >= limits.tokens_per_day:
            resets_at = start + timedelta(days=1)
            raise QuotaExceeded(
                QUOTA_EXCEEDED.format(limit=limits.tokens_per_day, used=used, resets_at=resets_at.isoformat()),
                limit=limits.tokens_per_day, used=used, resets_at=resets_at,
            )
    if limits.requests_per_minute is not None:
        minute = int(clock.time() // 60)
        refused = counters.take(user_id=user.pk, minute=minute, limit=limits.requests_per_minute)
        if refused is not None:
            resets_at = datetime.fromtimestamp((minute + 1) * 60, tz=UTC)
            seconds = max(1, math.ceil((resets_at - now).total_seconds()))
            raise RateLimited(
                RATE_LIMITED.format(limit=limits.requests_per_minute, seconds=seconds),
                limit=limits.requests_per_minute, used=refused, resets_at=resets_at,
            )


# ---- managing quotas ---------------------------------------------------------------------------


def _owner(scope: str, name: str) -> dict[str, Any]:
    if scope == Scope.USER:
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            raise NotFound(NO_SUCH_NAME.format(scope=scope, name=name))
        return {"user": user}
    if scope == Scope.GROUP:
        group = Group.objects.filter(name=name).first()
        if group is None:
            raise NotFound(NO_SUCH_NAME.format(scope=scope, name=name))
        return {"group": group}
    raise NotFound(UNKNOWN_SCOPE.format(scope=scope))


def quota_set(*, scope: str, name: str, tokens_per_day: int | None, requests_per_minute: int | None) -> tuple[Quota, bool]:
    owner = _owner(scope, name)
    return Quota.objects.update_or_create(
        **owner, defaults={"tokens_per_day": tokens_per_day, "requests_per_minute": requests_per_minute}
    )


def quota_delete(*, scope: str, name: str) -> None:
    deleted, _ = Quota.objects.filter(**_owner(scope, name)).delete()
    if not deleted:
        raise NotFound(NO_QUOTA.format(scope=scope, name=name))
