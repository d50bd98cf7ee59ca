from __future__ import annotations

from django.contrib import admin

from .models import Session, SessionMessage


class MessageInline(admin.TabularInline):
    model = SessionMessage
    fields = ["seq", "role", "content", "thinking", "tool_calls", "tool_id", "is_error", "incomplete", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    """Read-only transcripts: conversations belong to their owners."""

    list_display = ["id", "title", "owner", "model_id", "message_count", "total_tokens", "updated_at"]
    list_filter = ["model_id"]
    search_fields = ["id", "title", "owner__username"]
    list_select_related = ["owner"]
    readonly_fields = [f.name for f in Session._meta.fields]
    inlines = [MessageInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
