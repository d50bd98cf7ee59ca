"""Usage in the admin: the records with filters, and per-user and per-model totals of what is
filtered; quotas to set per user or group."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Sum
from django.http import HttpRequest
from django.template.response import TemplateResponse

from core.admin_ids import LabelledFields

from . import behind
from .models import Quota, UsageRecord

TOTALS = {"requests": Count("id"), "prompt_tokens": Sum("prompt_tokens"),
          "completion_tokens": Sum("completion_tokens"), "total_tokens": Sum("total_tokens")}


@admin.register(UsageRecord)
class UsageRecordAdmin(LabelledFields):
    """Read-only: records are written by the server, one per model call."""

    ids_as_written = ("model_id", "api_key_id", "session_id")

    list_display = ["at", "user", "kind", "model_id", "agent", "api_key_id", "session_id", "prompt_tokens",
                    "completion_tokens", "total_tokens", "duration_ms", "outcome"]
    list_filter = ["kind", "outcome", "model_id", "at"]
    search_fields = ["user__username", "model_id", "session_id", "agent"]
    list_select_related = ["user"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: UsageRecord | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        behind.settled()  # this worker's runs just answered are listed too
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data and "cl" in response.context_data:
            filtered = response.context_data["cl"].queryset.order_by()  # the same filters as the list
            response.context_data["per_user"] = filtered.values("user__username").annotate(**TOTALS).order_by("-total_tokens")
            response.context_data["per_model"] = filtered.values("model_id").annotate(**TOTALS).order_by("-total_tokens")
        return response


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    """A user's own quota wins over their groups'; of several groups the most generous limit
    applies; an empty limit means none. The same as ``PUT /v1/quotas/{scope}/{name}``."""

    list_display = ["__str__", "tokens_per_day", "requests_per_minute", "updated_at"]
    list_select_related = ["user", "group"]
    search_fields = ["user__username", "group__name"]
    autocomplete_fields = ["user", "group"]
