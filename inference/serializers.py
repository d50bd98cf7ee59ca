"""Request shapes of /v1/infer, /v1/infer/stream and /v1/tools/call (also for the schema)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.serializers import StrictSerializer

# Media travel as standard base64 (RFC 4648, padded; no line breaks), optionally as a data: URI.
# The engine sniffs an image's type from its bytes (PNG, JPEG, GIF, WEBP: unsupported_input
# otherwise) and holds both to their size limits.
DATA_URI = r"(?:[dD][aA][tT][aA]:[^,\x00]*,)?"
BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)"
BASE64_RE = rf"^{DATA_URI}{BASE64}$"
NOT_BASE64 = "Must be standard base64 (padded, no line breaks), optionally as a data: URI."
# The formats the engine maps (case-insensitive, with or without "audio/").
AUDIO_FORMAT_RE = r"^(?:[aA][uU][dD][iI][oO]/)?(?:[wW][aA][vV][eE]?|[xX]-[wW][aA][vV]|[mM][pP]3|[mM][pP][eE][gG])$"


def _base64_field(**kwargs: Any) -> serializers.RegexField:
    return serializers.RegexField(BASE64_RE, error_messages={"invalid": NOT_BASE64}, **kwargs)


class AudioSerializer(StrictSerializer):
    data = _base64_field()  # type: ignore[assignment]  # DRF's metaclass pops declared fields: .data stays the property
    format = serializers.RegexField(AUDIO_FORMAT_RE, max_length=16,
                                    error_messages={"invalid": "Must be wav or mp3 (audio/wav, audio/mpeg, …)."})


class ToolCallInSerializer(StrictSerializer):
    """A tool call of a replayed assistant message, as /v1/infer answers it."""

    id = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    name = serializers.CharField(max_length=200)
    arguments = serializers.DictField(required=False, default=dict)
    tool_id = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class MessageSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant", "tool"], default="user")
    content = serializers.JSONField(required=False, default="")  # any JSON value
    images = serializers.ListField(child=_base64_field(), required=False, default=list, max_length=16)
    audio = AudioSerializer(many=True, required=False, default=list)
    prompt_template = serializers.CharField(required=False, max_length=100)
    arguments = serializers.DictField(required=False, default=dict)
    # Replayed history (stateless clients may send earlier turns back).
    thinking = serializers.CharField(required=False, allow_blank=True, default="")
    tool_calls = ToolCallInSerializer(many=True, required=False, default=list)
    tool_call_id = serializers.CharField(required=False, allow_blank=True, default="")
    tool_id = serializers.CharField(required=False, allow_blank=True, default="")
    is_error = serializers.BooleanField(required=False, default=False)

    def validate_content(self, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(i, dict) for i in value):
            return value
        raise serializers.ValidationError("content must be a string or a list of content items.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("prompt_template") and attrs["role"] not in ("user", "system"):
            raise serializers.ValidationError({"prompt_template": "Only user and system messages can use a template."})
        if (attrs.get("images") or attrs.get("audio")) and attrs["role"] != "user":
            raise serializers.ValidationError({"images": "Images and audio belong in user messages."})
        return attrs


class ThinkField(serializers.Field):
    def to_internal_value(self, data: Any) -> bool | str:
        if isinstance(data, bool) or (isinstance(data, str) and data in ("low", "medium", "high", "max")):
            return data
        raise serializers.ValidationError('think must be true, false, or one of "low", "medium", "high", "max".')

    def to_representation(self, value: Any) -> Any:
        return value


DEFAULT_TOOL_ROUNDS = 10


def default_tool_rounds(limit: int) -> int:
    """A request's ``max_tool_rounds`` when it gives none, under the server's ``limit``."""
    return min(DEFAULT_TOOL_ROUNDS, limit)


class InferRequestSerializer(StrictSerializer):
    # With an agent, the agent's fields are the defaults; so the fields an agent sets carry no
    # default here (a field absent is "not given"): inference.services fills them in.
    model_id = serializers.CharField(required=False, max_length=100)
    agent = serializers.CharField(required=False, max_length=64)
    arguments = serializers.DictField(required=False)  # the agent's {{variables}}
    tool_ids = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=128)
    messages = MessageSerializer(many=True, required=False, default=list)
    text = serializers.CharField(required=False, trim_whitespace=False)
    session_id = serializers.CharField(required=False, allow_null=True, max_length=40)
    # Its upper bound is the runtime's (Runtime.prepare), for the SDK and the server alike; the
    # default never exceeds it (a lower AGENTSITE_MAX_TOOL_ROUNDS_LIMIT made every request without it a 400).
    max_tool_rounds = serializers.IntegerField(required=False, min_value=0)
    options = serializers.DictField(required=False)
    think = ThinkField(required=False, allow_null=True)
    stream = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("messages") and "text" not in attrs:
            raise serializers.ValidationError({"messages": "Give messages or text."})
        if "model_id" not in attrs and "agent" not in attrs:
            raise serializers.ValidationError({"model_id": "Give model_id or agent."})
        return attrs


class RerunRequestSerializer(StrictSerializer):
    """POST /v1/sessions/{id}/regenerate: every field optional (the session's model by default)."""

    model_id = serializers.CharField(max_length=100, required=False)
    tool_ids = serializers.ListField(child=serializers.CharField(max_length=200), required=False, default=list, max_length=128)
    max_tool_rounds = serializers.IntegerField(required=False, min_value=0)
    options = serializers.DictField(required=False)
    think = ThinkField(required=False, allow_null=True)


class EditRequestSerializer(RerunRequestSerializer):
    """POST /v1/sessions/{id}/edit: user message ``seq`` is replaced by ``content`` and answered again."""

    seq = serializers.IntegerField(min_value=0)
    content = serializers.CharField(trim_whitespace=False)


class ToolCallRequestSerializer(StrictSerializer):
    tool_id = serializers.CharField(required=False, max_length=200)
    server = serializers.CharField(required=False, max_length=64)
    tool = serializers.CharField(required=False, max_length=200)
    arguments = serializers.DictField(required=False, default=dict)
    session_id = serializers.CharField(required=False, max_length=40)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "tool_id" in attrs:
            if "server" in attrs or "tool" in attrs:
                raise serializers.ValidationError({"tool_id": "Give tool_id, or server and tool, not both."})
        elif not ("server" in attrs and "tool" in attrs):
            raise serializers.ValidationError({"tool_id": "Give tool_id, or server and tool."})
        return attrs


class ToolCallResponseSerializer(serializers.Serializer):
    tool_id = serializers.CharField()
    is_error = serializers.BooleanField()
    duration_ms = serializers.FloatField()
    content = serializers.ListField(child=serializers.DictField())
    structured = serializers.JSONField(allow_null=True)


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class InferResponseSerializer(serializers.Serializer):
    session_id = serializers.CharField(allow_null=True)
    model_id = serializers.CharField()
    messages = serializers.ListField(child=serializers.DictField())
    content = serializers.CharField(allow_blank=True)
    thinking = serializers.CharField(allow_blank=True)
    finish_reason = serializers.ChoiceField(choices=["stop", "length", "max_tool_rounds", "cancelled", "error"])
    tool_rounds = serializers.IntegerField()
    usage = UsageSerializer()
