"""Usage reads: the effective quota of a user, what they used today, and usage grouped for
``GET /v1/usage`` and the admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from registry import cache

from . import behind
from .models import Quota, UsageRecord

GROUP_FIELDS = {"day": "day", "user": "user__username", "model": "model_id", "key": "api_key_id", "kind": "kind"}
FIGURES = ("requests", "prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(frozen=True)
class Limits:
    """A user's effective limits; None = no limit."""

    tokens_per_day: int | None
    requests_per_minute: int | None
    scope: str  # "user": the user's own quota; "group": their groups'

    def to_dict(self) -> dict[str, Any]:
        return {"tokens_per_day": self.tokens_per_day, "requests_per_minute": self.requests_per_minute, "scope": self.scope}


def _most_generous(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


@dataclass(frozen=True)
class QuotaRules:
    by_user: dict[int, Quota]
    by_group: dict[int, Quota]


def _quota_rules() -> QuotaRules:
    rows = list(Quota.objects.all())
    return QuotaRules({q.user_id: q for q in rows if q.user_id}, {q.group_id: q for q in rows if q.group_id})


def quota_effective(*, user: Any) -> Limits | None:
    """The user's own quota if there is one, else per limit the most generous of their groups'
    (a group without that limit means no limit); None when no quota applies at all.

    Read from the registry snapshot (the quotas and the user's groups), so a run checks its
    caller's quota without a query unless one applies; a quota's change drops the snapshot."""
    registry = cache.snapshot()
    rules = registry.part("quotas", _quota_rules)
    own = rules.by_user.get(user.pk)
    if own is not None:
        return Limits(own.tokens_per_day, own.requests_per_minute, "user")
    if not rules.by_group:
        return None
    rows = [rules.by_group[g] for g in registry.groups_of(user) if g in rules.by_group]
    if not rows:
        return None
    return Limits(
        _most_generous([q.tokens_per_day for q in rows]), _most_generous([q.requests_per_minute for q in rows]), "group"
    )


def day_start(now: datetime | None = None) -> datetime:
    """Midnight UTC of ``now``'s day: token quotas count per UTC day."""
    now = now or timezone.now()
    return datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)


def usage_today(*, user_id: int) -> dict[str, int]:
    behind.settled()
    figures = UsageRecord.objects.filter(user_id=user_id, at__gte=day_start()).aggregate(
        requests=Count("id"), total_tokens=Sum("total_tokens")
    )
    return {"requests": figures["requests"] or 0, "total_tokens": figures["total_tokens"] or 0}


def usage_records(*, start: date, end: date, user: str | None = None) -> QuerySet[UsageRecord]:
    """Records from ``start`` to ``end`` inclusive (UTC days), of one username when given."""
    behind.settled()
    records = UsageRecord.objects.filter(at__gte=datetime.combine(start, time.min, tzinfo=UTC))
    if end < date.max:  # the last day has no next one
        records = records.filter(at__lt=datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC))
    return records.filter(user__username=user) if user is not None else records


def usage_grouped(records: QuerySet[UsageRecord], *, group_by: str) -> dict[str, Any]:
    """``{"data": [{"key", requests, tokens…}], "total": {…}}``, rows ordered by key."""
    sums = {
        "requests": Count("id"), "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"), "total_tokens": Sum("total_tokens"),
    }
    field = GROUP_FIELDS[group_by]
    if group_by == "day":
        records = records.annotate(day=TruncDate("at", tzinfo=UTC))
    rows = records.values(field).annotate(**sums).order_by(field)
    data = [{"key": _key(row[field]), **{f: row[f] or 0 for f in FIGURES}} for row in rows]
    total = records.aggregate(**sums)
    return {"data": data, "total": {f: total[f] or 0 for f in FIGURES}}


def _key(value: Any) -> str | None:
    if value is None:
        return None  # e.g. the browser session's calls, grouped by key
    return value.isoformat() if isinstance(value, date) else str(value)
