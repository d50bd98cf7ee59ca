"""Agents in the console: the same checks as /v1/agents, and a "try it" box on each agent."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from core.admin_ids import LabelledFields
from core.errors import DomainError
from registry.admin import GROUP_PICKER

from . import services
from .models import Agent


class AgentForm(forms.ModelForm):
    class Meta:
        model = Agent
        fields = "__all__"
        help_texts = {"tool_ids": 'The ids of the tools it may use; "agent.<name>" runs another agent.'}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        candidate = Agent(pk=self.instance.pk, **{k: v for k, v in cleaned.items() if k != "allowed_groups"})
        try:
            services.agent_check(candidate)
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None
        return cleaned


@admin.register(Agent)
class AgentAdmin(LabelledFields):
    form = AgentForm
    ids_as_written = ("model_id", "tool_ids")
    list_display = ["name", "model_id", "tool_count", "enabled", "updated_at"]
    list_filter = ["enabled", "allowed_groups"]
    search_fields = ["name", "description", "model_id"]
    formfield_overrides = GROUP_PICKER
    readonly_fields = ["created_at", "updated_at"]
    # The change page adds a "try it" box: it runs the saved agent on a sample message through
    # /v1/infer with the staff member's own session (static/agent_try.js).
    change_form_template = "admin/agents/agent/change_form.html"

    @admin.display(description="tools")
    def tool_count(self, obj: Agent) -> int:
        return len(obj.tool_ids or [])

    def delete_model(self, request: Any, obj: Agent) -> None:
        services.agent_delete(agent=obj)
