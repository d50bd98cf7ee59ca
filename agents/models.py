"""Agents: a saved composition of a model, tools, a prompt and options, run by its name."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models

from registry.models import Timestamped

AGENT_NAME_RE = r"^[A-Za-z0-9._-]{1,64}$"


class Agent(Timestamped):
    name = models.CharField(max_length=64, unique=True, validators=[RegexValidator(AGENT_NAME_RE)])
    description = models.TextField(blank=True, default="")
    # A model_id, not a foreign key: the agent outlives a model being replaced; a run of an
    # agent whose model is gone answers 404 model_not_found like any other unknown model.
    model_id = models.CharField(max_length=100)
    tool_ids = models.JSONField(default=list, blank=True, help_text='Tool ids; "agent.<name>" runs another agent.')
    system_prompt = models.TextField(blank=True, default="", help_text="{{variables}} come from the request's arguments.")
    prompt_template = models.CharField(
        max_length=100, null=True, blank=True, help_text="A prompt template (name or id) for the system prompt instead."
    )
    options = models.JSONField(default=dict, blank=True)
    max_tool_rounds = models.PositiveIntegerField(default=10)
    think = models.JSONField(null=True, blank=True, help_text='true, false, "low", "medium", "high", "max" or empty.')
    allowed_groups = models.ManyToManyField(Group, blank=True, related_name="agents")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
