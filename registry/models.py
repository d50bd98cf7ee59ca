"""The registries: models, tools, MCP servers, skills and env vars.

Constraints live in the database (unique ids, valid choices), not only in serializers.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from inference.engine import protocol_choices

MODEL_ID_RE = r"^[A-Za-z0-9._:-]{1,100}$"
TOOL_NAME_RE = r"^[A-Za-z0-9_-]{1,64}$"
SERVER_NAME_RE = r"^[A-Za-z0-9_-]{1,64}$"
ENV_KEY_RE = r"^[A-Za-z_][A-Za-z0-9_]{0,199}$"


class ToolType(models.TextChoices):
    FUNCTION = "function", "Function"
    MCP = "mcp", "MCP"
    SKILL = "skill", "Skill"
    BUILTIN = "builtin", "Built-in"


class ToolCallFormat(models.TextChoices):
    NATIVE = "native", "Native (structured tool calls only)"
    AUTO = "auto", "Auto (also tool calls written as text)"


class MCPStatus(models.TextChoices):
    CONNECTED = "connected", "Connected"
    DISCONNECTED = "disconnected", "Disconnected"
    ERROR = "error", "Error"


class Timestamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


ALLOWED_GROUPS_HELP = (
    "Only members of these groups (and staff) may see and use this; none chosen = every signed-in user."
)


def allowed_groups_field(related_name: str, help_text: str = ALLOWED_GROUPS_HELP) -> models.ManyToManyField[Group, Any]:
    """Who may use a registry entry (registry/access.py enforces it); ``group.<related_name>``
    lists what a group may use (the Group admin page shows it)."""
    return models.ManyToManyField(Group, blank=True, related_name=related_name, help_text=help_text)


class LLMModel(Timestamped):
    model_id = models.CharField(max_length=100, unique=True, validators=[RegexValidator(MODEL_ID_RE)])
    # Choices come from the engine's adapters: a new wire protocol needs no change here.
    api_protocol = models.CharField(max_length=16, choices=protocol_choices)
    api_base = models.CharField(max_length=500)
    model_name = models.CharField(max_length=200)
    api_key = models.CharField(max_length=500, blank=True, default="", help_text="Literal or ${ENV_VAR}; write-only.")
    display_name = models.CharField(max_length=200, blank=True, default="")
    context_window = models.PositiveIntegerField(null=True, blank=True)
    options = models.JSONField(default=dict, blank=True)
    supports_vision = models.BooleanField(default=False)
    supports_audio = models.BooleanField(default=False)
    timeout_s = models.FloatField(default=300.0)
    enabled = models.BooleanField(default=True)
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, default=4096,
        help_text="Sent as the protocol's output cap (max_tokens / num_predict) unless the options set one; empty = none.",
    )
    tool_call_format = models.CharField(
        max_length=8, choices=ToolCallFormat.choices, default=ToolCallFormat.NATIVE,
        help_text="auto: also run tool calls a small local model writes as text (docs/local-models.md).",
    )
    allowed_groups = allowed_groups_field("usable_models")

    class Meta:
        verbose_name = "model"
        ordering = ["model_id"]
        constraints = [
            models.CheckConstraint(condition=Q(timeout_s__gt=0), name="llmmodel_positive_timeout"),
            models.CheckConstraint(
                condition=Q(tool_call_format__in=ToolCallFormat.values), name="llmmodel_valid_tool_call_format"
            ),
            models.CheckConstraint(
                condition=Q(max_output_tokens__isnull=True) | Q(max_output_tokens__gt=0),
                name="llmmodel_positive_max_output_tokens",
            ),
        ]

    def __str__(self) -> str:
        return self.model_id


class MCPServer(Timestamped):
    name = models.CharField(max_length=64, unique=True, validators=[RegexValidator(SERVER_NAME_RE)])
    config = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=MCPStatus.choices, default=MCPStatus.DISCONNECTED)
    last_error = models.TextField(blank=True, default="")
    last_connected_at = models.DateTimeField(null=True, blank=True)
    allowed_groups = allowed_groups_field(
        "usable_mcp_servers",
        "Only members of these groups (and staff) may use this server's tools; none chosen = every signed-in user. "
        "A tool's own groups narrow this further."
    )

    class Meta:
        verbose_name = "MCP server"
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=Q(status__in=MCPStatus.values), name="mcpserver_valid_status")]

    def __str__(self) -> str:
        return self.name


class Skill(Timestamped):
    name = models.CharField(max_length=64, unique=True)
    description = models.TextField()
    path = models.CharField(max_length=1000)
    uploaded = models.BooleanField(default=False, help_text="Stored under the data dir from a zip upload.")
    allowed_tools = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    allowed_groups = allowed_groups_field("usable_skills")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tool(Timestamped):
    tool_id = models.CharField(max_length=200, unique=True)
    tool_type = models.CharField(max_length=16, choices=ToolType.choices, default=ToolType.FUNCTION)
    name = models.CharField(max_length=64, validators=[RegexValidator(TOOL_NAME_RE)])
    description = models.TextField(blank=True, default="")
    parameters = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    callable = models.CharField(max_length=300, blank=True, default="")
    endpoint = models.CharField(max_length=1000, blank=True, default="")
    server = models.ForeignKey(MCPServer, null=True, blank=True, on_delete=models.CASCADE, related_name="tools")
    remote_name = models.CharField(max_length=200, blank=True, default="")
    skill = models.ForeignKey(Skill, null=True, blank=True, on_delete=models.CASCADE, related_name="tools")
    timeout_s = models.FloatField(null=True, blank=True)
    allowed_groups = allowed_groups_field(
        "usable_tools",
        "Only members of these groups (and staff) may use this tool; none chosen = every signed-in user. "
        "An MCP server's groups apply too."
    )

    class Meta:
        ordering = ["tool_id"]
        # Registering what runs code on the server (a callable, an MCP command, a skill with
        # scripts, enabling bash) takes this on top of add/change (docs/security.md).
        permissions = [("run_code", "Can register what runs code on the server")]
        constraints = [
            models.CheckConstraint(condition=Q(tool_type__in=ToolType.values), name="tool_valid_type"),
            # A function tool runs either an importable callable or an HTTP endpoint, never both.
            models.CheckConstraint(
                condition=~Q(tool_type="function") | (Q(callable="") ^ Q(endpoint="")),
                name="tool_function_has_one_target",
            ),
            models.CheckConstraint(
                condition=~Q(tool_type="mcp") | (Q(server__isnull=False) & ~Q(remote_name="")),
                name="tool_mcp_has_server",
            ),
        ]

    def __str__(self) -> str:
        return self.tool_id


class EnvVar(Timestamped):
    key = models.CharField(max_length=200, unique=True, validators=[RegexValidator(ENV_KEY_RE)])
    value = models.TextField(blank=True, default="")
    is_secret = models.BooleanField(default=True)

    class Meta:
        verbose_name = "environment variable"
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key
