"""Input/output serializers for the registries. Secrets are write-only and read masked."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from rest_framework import serializers

from core.serializers import StrictModelSerializer, StrictSerializer
from inference.engine import option_problems_for, protocol_choices

from . import live_settings, services
from .models import ENV_KEY_RE, MODEL_ID_RE, EnvVar, LLMModel, MCPServer, Skill, Tool, ToolType


def validate_header_value(value: str) -> None:
    """An API key goes into an HTTP header: printable ASCII only (else a 500, or the key echoed in errors)."""
    if value and not (value.isascii() and value.isprintable()):
        raise serializers.ValidationError("Must be printable ASCII (it is sent in an HTTP header).")


def group_names_field() -> serializers.SlugRelatedField[Group]:
    """``allowed_groups`` as Django group names; an unknown name is a 400 ``validation_error``."""
    return serializers.SlugRelatedField(
        many=True, slug_field="name", queryset=Group.objects.all(), required=False,
        help_text="Group names whose members may use this; empty = every authenticated user (staff always).",
    )


class GroupNamesSerializer(StrictSerializer):
    """The ``allowed_groups`` of an MCP server or skill registration."""

    allowed_groups = group_names_field()


class ModelSerializer(StrictModelSerializer):
    """A model as staff see and write it."""

    allowed_groups = group_names_field()
    api_key = serializers.CharField(required=False, allow_blank=True, max_length=500, validators=[validate_header_value])
    options = serializers.DictField(required=False)

    class Meta:
        model = LLMModel
        fields = [
            "model_id", "api_protocol", "api_base", "model_name", "api_key", "display_name", "context_window",
            "options", "supports_vision", "supports_audio", "timeout_s", "enabled", "max_output_tokens",
            "tool_call_format", "allowed_groups", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        # A taken model_id is the database's to refuse (409 conflict), not a 400 from a pre-check.
        extra_kwargs = {"context_window": {"min_value": 1}, "timeout_s": {"min_value": 0.1, "max_value": 86400},
                        "max_output_tokens": {"min_value": 1},
                        "model_id": {"validators": [RegexValidator(MODEL_ID_RE)]}}

    def validate_api_base(self, value: str) -> str:
        if not value.startswith(("http://", "https://", "${")):
            raise serializers.ValidationError("api_base must be an http(s) URL.")
        return value.rstrip("/")

    def validate_model_id(self, value: str) -> str:
        if self.instance is not None and value != self.instance.model_id:
            raise serializers.ValidationError("model_id cannot be changed; create a new model instead.")
        if value == "detect":  # /v1/models/detect is another endpoint: such a model could never be read
            raise serializers.ValidationError("'detect' is reserved (/v1/models/detect is another endpoint).")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Default options hold the JSON types the protocol gives their names (as a run checks them)."""
        if "options" in attrs or "api_protocol" in attrs:
            protocol = attrs.get("api_protocol", getattr(self.instance, "api_protocol", ""))
            options = attrs.get("options", getattr(self.instance, "options", None)) or {}
            problems = option_problems_for(protocol, options) if protocol else {}
            if problems:
                raise serializers.ValidationError({f"options.{name}": [problem] for name, problem in problems.items()})
        return attrs

    def to_representation(self, instance: LLMModel) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["api_key"] = services.mask_secret(instance.api_key)
        return data


class PublicView(serializers.ModelSerializer):
    """A registry entry as non-staff read it: only the fields listed, closed in the OpenAPI
    schema (so a staff answer, which has more, never also matches it)."""


class ModelPublicSerializer(PublicView):
    """A model as everybody else sees it: nothing about where or how it is reached."""

    class Meta:
        model = LLMModel
        fields = ["model_id", "display_name", "api_protocol", "context_window", "supports_vision", "supports_audio", "enabled"]
        read_only_fields = fields


class DetectModelsSerializer(StrictSerializer):
    api_protocol = serializers.ChoiceField(choices=protocol_choices())
    api_base = serializers.CharField(max_length=500)
    api_key = serializers.CharField(required=False, allow_blank=True, validators=[validate_header_value])


RESERVED_TOOL_IDS = frozenset({"mcp", "skill", "call"})
SWITCH_TARGET = "Give one non-empty callable or endpoint: it replaces the tool's current target."


class ToolSerializer(StrictModelSerializer):
    """A tool as staff see and write it."""

    allowed_groups = group_names_field()
    server: serializers.SlugRelatedField[MCPServer] = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True
    )
    skill: serializers.SlugRelatedField[Skill] = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    parameters = serializers.DictField(required=False)

    class Meta:
        model = Tool
        fields = [
            "tool_id", "tool_type", "name", "description", "parameters", "enabled", "callable", "endpoint",
            "server", "remote_name", "skill", "timeout_s", "allowed_groups", "created_at", "updated_at",
        ]
        read_only_fields = ["server", "remote_name", "skill", "created_at", "updated_at"]
        extra_kwargs = {"timeout_s": {"min_value": 0.1, "max_value": 3600}, "tool_id": {"validators": []}}

    def validate_tool_id(self, value: str) -> str:
        if self.instance is not None and value != self.instance.tool_id:
            raise serializers.ValidationError("tool_id cannot be changed.")
        if value in RESERVED_TOOL_IDS:  # /v1/tools/{mcp,skill,call} are other endpoints: such a tool could never be read
            raise serializers.ValidationError(f"{value!r} is reserved (/v1/tools/{value} is another endpoint).")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The shape of the input; importing the callable and checking the schema are the service's."""
        tool_type = attrs.get("tool_type", self.instance.tool_type if self.instance else ToolType.FUNCTION)
        if self.instance is None and tool_type != ToolType.FUNCTION:
            raise serializers.ValidationError(
                {"tool_type": "Only function tools are created here; MCP tools come from /v1/tools/mcp, "
                              "skills from /v1/tools/skill."}
            )
        if self.instance is not None and "tool_type" in attrs and attrs["tool_type"] != self.instance.tool_type:
            raise serializers.ValidationError({"tool_type": "tool_type cannot be changed."})
        if tool_type == ToolType.FUNCTION:
            endpoint = attrs.get("endpoint") or ""
            if endpoint and not endpoint.startswith(("http://", "https://", "${")):
                raise serializers.ValidationError({"endpoint": "endpoint must be an http(s) URL."})
            if self.instance is not None:
                self._switch_target(attrs)
        elif {"callable", "endpoint"} & {k for k, v in attrs.items() if v}:
            raise serializers.ValidationError({"callable": f"{tool_type} tools take no callable or endpoint."})
        attrs.pop("tool_type", None)  # only function tools are created here, and a type never changes
        return attrs

    @staticmethod
    def _switch_target(attrs: dict[str, Any]) -> None:
        """An update names the one target it wants; the other is cleared (a function tool runs
        exactly one callable or one endpoint, so switching takes one field, not two)."""
        names: tuple[str, ...] = ("callable", "endpoint")
        for name in names:
            if name in attrs and not attrs[name]:
                raise serializers.ValidationError({name: SWITCH_TARGET})
        if attrs.get("callable") and attrs.get("endpoint"):
            raise serializers.ValidationError({"callable": SWITCH_TARGET})
        if attrs.get("callable"):
            attrs["endpoint"] = ""
        elif attrs.get("endpoint"):
            attrs["callable"] = ""


class ToolPublicSerializer(PublicView):
    """A tool as everybody else sees it: what a model is told, never its target or config."""

    class Meta:
        model = Tool
        fields = ["tool_id", "name", "description", "tool_type", "parameters", "enabled"]
        read_only_fields = fields


class EnvVarSerializer(StrictModelSerializer):
    key = serializers.RegexField(ENV_KEY_RE, max_length=200)
    value = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=100_000)
    is_secret = serializers.BooleanField(default=True)

    class Meta:
        model = EnvVar
        fields = ["key", "value", "is_secret", "updated_at"]
        read_only_fields = ["updated_at"]
        # upserts: the unique check is the service's job
        extra_kwargs: dict[str, dict[str, Any]] = {"key": {"validators": []}}

    def validate_key(self, value: str) -> str:
        if value == "detect":  # /v1/env/detect is another endpoint: such a variable could never be deleted
            raise serializers.ValidationError("'detect' is reserved (/v1/env/detect is another endpoint).")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A live AGENTSITE_* setting applies from the next run on: a value it cannot take is
        # refused here rather than ignored there.
        try:
            live_settings.validate(attrs["key"], attrs["value"])
        except ValueError as exc:
            raise serializers.ValidationError({"value": str(exc)}) from None
        return attrs

    def to_representation(self, instance: EnvVar) -> dict[str, Any]:
        data = super().to_representation(instance)
        if instance.is_secret:
            data["value"] = services.mask_secret(instance.value)
        return data


class MCPServerSerializer(serializers.ModelSerializer):
    tool_ids = serializers.SerializerMethodField()
    config = serializers.SerializerMethodField()
    allowed_groups: serializers.SlugRelatedField[Group] = serializers.SlugRelatedField(
        many=True, slug_field="name", read_only=True
    )

    class Meta:
        model = MCPServer
        fields = ["name", "config", "status", "last_error", "last_connected_at", "tool_ids", "allowed_groups",
                  "created_at", "updated_at"]

    def get_tool_ids(self, obj: MCPServer) -> list[str]:
        return [t.tool_id for t in obj.tools.all()]

    def get_config(self, obj: MCPServer) -> dict[str, Any]:
        return services.mask_mcp_config(obj.config)


class SkillPublicSerializer(PublicView):
    """A skill as everybody but staff see it: never its folder or warnings."""

    tool_id = serializers.SerializerMethodField()

    class Meta:
        model = Skill
        fields = ["name", "description", "tool_id"]

    def get_tool_id(self, obj: Skill) -> str:
        return f"skill.{obj.name}"


class SkillSerializer(SkillPublicSerializer):
    """A skill as staff see it."""

    allowed_groups: serializers.SlugRelatedField[Group] = serializers.SlugRelatedField(
        many=True, slug_field="name", read_only=True
    )

    class Meta:
        model = Skill
        fields = ["name", "description", "path", "uploaded", "allowed_tools", "warnings", "tool_id", "allowed_groups",
                  "created_at", "updated_at"]
