"""Input and output shapes of /v1/usage and /v1/quotas."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from core.serializers import StrictSerializer

from .selectors import GROUP_FIELDS

DEFAULT_DAYS = 30


class UsageQuerySerializer(serializers.Serializer):
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD&group_by=…&user=NAME``; default: the last 30 days by day.
    Other query parameters are ignored, as on every list."""

    from_ = serializers.DateField(required=False)
    to = serializers.DateField(required=False)
    group_by = serializers.ChoiceField(choices=list(GROUP_FIELDS), default="day")
    user = serializers.CharField(required=False, allow_blank=True, max_length=150)  # blank: everyone

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # a Python keyword as a query parameter
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        today = timezone.now().astimezone(UTC).date()
        end = attrs.get("to") or today
        # ``from`` after ``to`` is an empty range: no rows, zero totals.
        start = attrs.pop("from", None) or max(date.min, end - timedelta(days=DEFAULT_DAYS - 1))
        attrs["start"], attrs["to"] = start, end
        return attrs


class UsageRowSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True)
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class UsageTotalSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()




class QuotaSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=["user", "group"], read_only=True)
    name = serializers.CharField(read_only=True)
    tokens_per_day = serializers.IntegerField(allow_null=True, min_value=0, max_value=2**62)
    requests_per_minute = serializers.IntegerField(allow_null=True, min_value=0, max_value=2**31 - 1)


class QuotaInputSerializer(StrictSerializer):
    """``PUT /v1/quotas/{scope}/{name}``: both limits, ``null`` = no limit (a missing one too)."""

    tokens_per_day = serializers.IntegerField(allow_null=True, min_value=0, max_value=2**62, required=False, default=None)
    requests_per_minute = serializers.IntegerField(
        allow_null=True, min_value=0, max_value=2**31 - 1, required=False, default=None
    )
