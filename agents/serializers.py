"""Agent request/response shapes: strict input (unknown fields and wrong JSON types refused)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from rest_framework import serializers

from core.serializers import StrictModelSerializer

from .models import AGENT_NAME_RE, Agent

NAME_FIXED = "name cannot be changed; create a new agent instead."
THINK_LEVELS = ("low", "medium", "high", "max")
THINK_VALUES = 'think must be null, true, false, or one of "low", "medium", "high", "max".'


class AgentSerializer(StrictModelSerializer):
    tool_ids = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=128)
    options = serializers.DictField(required=False)
    think = serializers.JSONField(required=False, allow_null=True)  # any JSON value; checked below
    prompt_template = serializers.CharField(required=False, allow_null=True, max_length=100)
    # Group names; an unknown one is a 400 naming it.
    allowed_groups = serializers.SlugRelatedField(slug_field="name", many=True, required=False, queryset=Group.objects.all())

    class Meta:
        model = Agent
        fields = [
            "name", "description", "model_id", "tool_ids", "system_prompt", "prompt_template", "options",
            "max_tool_rounds", "think", "allowed_groups", "enabled", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        # A taken name is the service's to refuse (409 conflict), not a 400 from a pre-check.
        extra_kwargs = {"name": {"validators": [RegexValidator(AGENT_NAME_RE)]}}

    def validate_think(self, value: Any) -> Any:
        if value is None or isinstance(value, bool) or value in THINK_LEVELS:
            return value
        raise serializers.ValidationError(THINK_VALUES)

    def validate_name(self, value: str) -> str:
        if self.instance is not None and value != self.instance.name:
            raise serializers.ValidationError(NAME_FIXED)
        return value


class AgentPublicSerializer(serializers.ModelSerializer):
    """What a non-staff caller sees of an agent: never its prompt, options or groups."""

    class Meta:
        model = Agent
        fields = ["name", "description", "model_id", "tool_ids", "enabled"]

