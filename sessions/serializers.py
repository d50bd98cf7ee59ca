from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .models import Session, SessionMessage


class SessionSummarySerializer(serializers.ModelSerializer):
    session_id = serializers.CharField(source="id")

    class Meta:
        model = Session
        fields = ["session_id", "title", "model_id", "created_at", "updated_at", "message_count"]


class SessionMessageSerializer(serializers.ModelSerializer):
    content = serializers.JSONField()

    class Meta:
        model = SessionMessage
        fields = [
            "seq", "role", "content", "thinking", "tool_calls", "tool_call_id", "tool_id", "is_error", "duration_ms",
            "prompt_template", "arguments", "attachments", "incomplete", "error", "superseded", "usage", "created_at",
        ]

    def to_representation(self, instance: SessionMessage) -> dict[str, Any]:
        data = super().to_representation(instance)
        # Only the fields that mean something for this role, as in docs/api.md's message shapes.
        if instance.role != "tool":
            for key in ("tool_call_id", "tool_id", "is_error", "duration_ms"):
                data.pop(key)
        else:
            data.pop("tool_calls")
        if instance.prompt_template is None:
            data.pop("prompt_template")
            data.pop("arguments")
        return data


class SessionDetailSerializer(SessionSummarySerializer):
    messages = SessionMessageSerializer(many=True, read_only=True)
    usage = serializers.SerializerMethodField()

    class Meta(SessionSummarySerializer.Meta):
        fields = SessionSummarySerializer.Meta.fields + ["summary", "memory", "usage", "messages"]

    def get_usage(self, obj: Session) -> dict[str, int]:
        return {"prompt_tokens": obj.prompt_tokens, "completion_tokens": obj.completion_tokens, "total_tokens": obj.total_tokens}
