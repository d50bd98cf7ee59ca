from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from core.admin_ids import LabelledFields

from . import services
from .models import Session, SessionMessage

TRANSCRIPT_TEXT_MAX = 4_000  # a card shows this much of a long message or tool result


def _text(content: Any) -> str:
    if isinstance(content, str):
        text = content
    else:
        text = "\n".join(
            str(i.get("text", "")) if isinstance(i, dict) and i.get("type") == "text" else f"[{i.get('type', 'item')}]"
            for i in content or [] if isinstance(i, dict)
        )
    return text if len(text) <= TRANSCRIPT_TEXT_MAX else text[:TRANSCRIPT_TEXT_MAX] + "\n… (cut here; the API has it whole)"


def _card(row: SessionMessage) -> SafeString:
    """One message as a card: who, when, what; thinking folded; tool calls and results as code."""
    tags = [row.tool_id] if row.role == "tool" else []
    flags = ((row.superseded, "superseded"), (row.incomplete, "partial"), (row.is_error, "error"))
    tags += [label for flag, label in flags if flag]
    parts = []
    if row.thinking:
        parts.append(format_html('<details><summary>Thinking</summary><p class="body">{}</p></details>', row.thinking))
    text = _text(row.content)
    if text:
        parts.append(format_html('<pre class="code">{}</pre>' if row.role == "tool" else '<p class="body">{}</p>', text))
    for call in row.tool_calls or []:
        args = json.dumps(call.get("arguments") or {}, ensure_ascii=False, indent=2)
        name = call.get("tool_id") or call.get("name")
        parts.append(format_html('<div>Calls <code>{}</code></div><pre class="code">{}</pre>', name, args))
    if row.error:
        parts.append(format_html('<p class="error">{}: {}</p>', row.error.get("code", "error"), row.error.get("message", "")))
    if row.attachments:
        parts.append(format_html("<p>{} attachment(s)</p>", len(row.attachments)))
    classes = f"transcript-card role-{row.role}" + (" is-superseded" if row.superseded else "")
    return format_html(
        '<article class="{}"><header><b>{}</b><span>#{}</span><span>{}</span><span>{}</span></header>{}</article>',
        classes, row.role, row.seq, row.created_at.strftime("%Y-%m-%d %H:%M:%S"), " · ".join(tags),
        format_html_join("", "{}", ((p,) for p in parts)),
    )


@admin.register(Session)
class SessionAdmin(LabelledFields):
    """Read-only transcripts: conversations belong to their owners."""

    ids_as_written = ("id", "model_id")

    list_display = ["title_or_id", "owner", "model_id", "message_count", "total_tokens", "running", "updated_at"]
    list_filter = ["model_id"]
    actions = ["release_lock"]
    search_fields = ["id", "title", "owner__username"]
    list_select_related = ["owner"]
    fieldsets = [
        (None, {"fields": ["id", "title", "owner", "model_id", "created_at", "updated_at"]}),
        ("Usage", {"fields": ["message_count", "prompt_tokens", "completion_tokens", "total_tokens"]}),
        ("Memory", {"fields": ["summary", "memory"], "classes": ["collapse"]}),
        ("Transcript", {"fields": ["transcript"]}),
    ]
    readonly_fields = [
        "id", "title", "owner", "model_id", "created_at", "updated_at", "message_count", "prompt_tokens",
        "completion_tokens", "total_tokens", "summary", "memory", "transcript",
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="chat", ordering="title")
    def title_or_id(self, obj: Session) -> str:
        return obj.title or obj.id

    @admin.display(boolean=True, description="run in progress")
    def running(self, obj: Session) -> bool:
        return bool(obj.run_token)

    @admin.display(description="messages")
    def transcript(self, obj: Session) -> SafeString:
        rows = SessionMessage.objects.filter(session=obj).order_by("seq")
        return format_html('<div class="transcript">{}</div>', format_html_join("", "{}", ((_card(r),) for r in rows)))

    @admin.action(description="Release the run lock (the run, if still going, stops at its next heartbeat)")
    def release_lock(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        released = sum(services.session_force_unlock(session=s) for s in queryset)
        self.message_user(request, f"Released {released} lock(s).", messages.SUCCESS)
