"""Shapes of /v1/me and /v1/me/api-keys."""

from __future__ import annotations

from rest_framework import serializers

from core.serializers import StrictSerializer

from .models import ApiKey


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at"]


class ApiKeyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class QuotaViewSerializer(serializers.Serializer):
    tokens_per_day = serializers.IntegerField(allow_null=True)
    requests_per_minute = serializers.IntegerField(allow_null=True)
    scope = serializers.ChoiceField(choices=["user", "group"], help_text="The user's own quota, or their groups'.")


class UsageTodaySerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_staff = serializers.BooleanField()
    groups = serializers.ListField(child=serializers.CharField())
    quota = QuotaViewSerializer(allow_null=True)
    usage_today = UsageTodaySerializer()
