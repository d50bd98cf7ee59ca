from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import Session, SessionMessage


class MessageInline(admin.TabularInline):
    model = SessionMessage
    fields = readonly_fields = (
        "seq", "role", "content", "thinking", "tool_calls", "tool_id", "is_error", "incomplete", "created_at",
    )
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    """Read-only transcripts: conversations belong to their owners."""

    list_display = ["id", "title", "owner", "model_id", "message_count", "total_tokens", "running", "updated_at"]
    list_filter = ["model_id"]
    actions = ["release_lock"]
    search_fields = ["id", "title", "owner__username"]
    list_select_related = ["owner"]
    readonly_fields = [f.name for f in Session._meta.fields]
    inlines = [MessageInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(boolean=True, description="run in progress")
    def running(self, obj: Session) -> bool:
        return bool(obj.run_token)

    @admin.action(description="Release the run lock (the run, if still going, stops at its next heartbeat)")
    def release_lock(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        released = sum(services.session_force_unlock(session=s) for s in queryset)
        self.message_user(request, f"Released {released} lock(s).", messages.SUCCESS)
