"""The chat pages: server-rendered templates plus htmx; the page talks to /v1 for inference.

One URL, one template: each page view renders the whole page, or only the conversation
partial when htmx asks (``request.htmx``), and says so with ``Vary: HX-Request``. Stored
history is rendered here from stored message rows (read through the sessions app's selectors):
assistant text through the Markdown sanitizer, everything else escaped by the template engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseLocation
from django_htmx.middleware import HtmxDetails

from accounts.services import default_model_of
from agents.selectors import agents_for_user
from core.errors import NotFound
from core.http import csp
from inference.engine import template_variables
from registry import selectors as registry
from registry.models import Tool, ToolType
from sessions import selectors as session_selectors
from sessions import services as session_store
from sessions.models import Session, SessionMessage
from templates_app import services as templates

from .errors import ERROR_TEXT, GENERIC, error_view
from .markdown import render_markdown

THEME_COOKIE = "theme"
THEMES = ("light", "dark")
SIDEBAR_LIMIT = 200
TOOL_RESULT_MAX_CHARS = 8_000  # a card shows this much of a tool's output; the rest stays in the session
ATTACHMENT_NAME_RE = re.compile(r"^[0-9a-f]{24}\.[a-z0-9]{1,8}$")

NO_MODELS = "No model is registered yet."


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's middleware (for the type checker)."""

    htmx: HtmxDetails


# ---- presentation of stored messages ---------------------------------------------------------


@dataclass
class ToolCard:
    id: str
    name: str
    tool_id: str
    arguments: str
    result: str | None = None
    is_error: bool = False
    duration_ms: float | None = None

    @property
    def state(self) -> str:
        if self.result is None:
            return "pending"
        return "error" if self.is_error else "ok"


@dataclass
class Segment:
    """One assistant message: its thinking, its text, the tool calls it made."""

    seq: int
    thinking: str = ""
    html: str = ""
    cards: list[ToolCard] = field(default_factory=list)
    incomplete: bool = False
    error: dict[str, str] | None = None  # as error_view shows it
    text: str = ""  # the Markdown source, for "copy answer"
    usage: dict[str, Any] | None = None


@dataclass
class Block:
    """What the page shows as one bubble: a user message, or an assistant turn (several rounds)."""

    kind: str  # "user" | "assistant" | "system"
    seq: int
    text: str = ""
    template: str = ""
    arguments: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)

    @property
    def raw(self) -> str:
        """An answer's whole Markdown text (what "Copy" puts on the clipboard)."""
        return "\n\n".join(seg.text for seg in self.segments if seg.text)

    @property
    def usage(self) -> dict[str, Any] | None:
        """The usage of the run that ended this answer (on its last assistant message)."""
        return next((seg.usage for seg in reversed(self.segments) if seg.usage), None)

    @property
    def usage_text(self) -> str:
        """"1,234 tokens · 2.5 s" (chat.js writes the same for a live answer)."""
        u = self.usage or {}
        return f"{int(u.get('total_tokens') or 0):,} tokens · {float(u.get('duration_ms') or 0) / 1000:.1f} s" if u else ""


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        text = content
    else:
        parts = []
        for item in content or []:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text":
                parts.append(str(item.get("text", "")))
            elif kind in ("image", "audio"):
                parts.append(f"[{kind}: {item.get('mimeType') or item.get('mime_type') or kind}]")
            elif kind == "resource":
                resource = item.get("resource") or {}
                parts.append(str(resource.get("text") or resource.get("uri") or "[resource]"))
        text = "\n".join(parts)
    if len(text) > TOOL_RESULT_MAX_CHARS:
        text = text[:TOOL_RESULT_MAX_CHARS] + "\n…"
    return text


def _pretty(arguments: Any) -> str:
    return json.dumps(arguments if arguments is not None else {}, indent=2, ensure_ascii=False)


def blocks_from_rows(rows: Iterable[SessionMessage]) -> list[Block]:
    """Group rows into bubbles; tool results fill the card of the call that asked for them."""
    blocks: list[Block] = []
    cards: dict[str, ToolCard] = {}
    for row in rows:
        if row.superseded:  # replaced by a regenerate or an edit: stored, not shown
            continue
        if row.role == "user":
            text = row.content if isinstance(row.content, str) else _result_text(row.content)
            blocks.append(Block("user", row.seq, text=text, template=row.prompt_template or "", arguments=row.arguments,
                                attachments=list(row.attachments or [])))
            continue
        if row.role == "system":
            blocks.append(
                Block("system", row.seq, text=row.content if isinstance(row.content, str) else _result_text(row.content))
            )
            continue
        if not blocks or blocks[-1].kind != "assistant":
            blocks.append(Block("assistant", row.seq))
        block = blocks[-1]
        if row.role == "assistant":
            text = row.content if isinstance(row.content, str) else _result_text(row.content)
            seg = Segment(row.seq, thinking=row.thinking, incomplete=row.incomplete, text=text, usage=row.usage,
                          error=error_view(row.error) if row.error else None, html=render_markdown(text))
            for call in row.tool_calls or []:
                card = ToolCard(id=str(call.get("id", "")), name=str(call.get("name", "")),
                                tool_id=str(call.get("tool_id", "")), arguments=_pretty(call.get("arguments")))
                cards[card.id] = card
                seg.cards.append(card)
            block.segments.append(seg)
        elif row.role == "tool":
            result_card = cards.get(row.tool_call_id)
            if result_card is None:  # its call is outside the rows shown: a card of its own
                result_card = ToolCard(id=row.tool_call_id, name=row.tool_name or row.tool_id, tool_id=row.tool_id, arguments="")
                block.segments.append(Segment(row.seq, cards=[result_card]))
            result_card.result = _result_text(row.content)
            result_card.is_error = row.is_error
            result_card.duration_ms = row.duration_ms
    for block in blocks:
        for seg in block.segments:
            seg.html = mark_safe(seg.html)  # noqa: S308  (sanitized by render_markdown)
    return blocks


# ---- selectors for the page ------------------------------------------------------------------


@dataclass
class ToolGroup:
    label: str
    tools: list[Tool]


def tool_groups(user: Any) -> list[ToolGroup]:
    """The enabled tools ``user`` may use, by kind: functions, MCP per server, skills, built-ins."""
    tools = registry.tools_enabled(user=user)
    functions: list[Tool] = []
    mcp: dict[str, list[Tool]] = {}
    skills: list[Tool] = []
    builtins: list[Tool] = []
    for tool in tools:
        if tool.tool_type == ToolType.MCP:
            mcp.setdefault(tool.server.name if tool.server else "?", []).append(tool)
        elif tool.tool_type == ToolType.SKILL:
            skills.append(tool)
        elif tool.tool_type == ToolType.BUILTIN:
            builtins.append(tool)
        else:
            functions.append(tool)
    groups = [ToolGroup("Functions", functions)] if functions else []
    groups += [ToolGroup(f"MCP · {server}", items) for server, items in sorted(mcp.items())]
    if skills:
        groups.append(ToolGroup("Skills", skills))
    if builtins:
        groups.append(ToolGroup("Built-ins", builtins))
    return groups


def _session_for_user(request: HttpRequest, session_id: str) -> Session:
    try:
        return session_selectors.session_get_for_user(session_id=session_id, user=request.user)
    except NotFound:
        raise Http404("No such chat.") from None


def _sessions(request: HttpRequest, q: str = "") -> list[Session]:
    sessions = session_selectors.session_list_for_user(user=request.user, q=q)
    return list(sessions.only("id", "title", "updated_at")[:SIDEBAR_LIMIT])


def _settings_url() -> str:
    """The user's settings page (password, API keys, default model: web/settings_page.py)."""
    return reverse("chat:settings")


def _theme(request: HttpRequest) -> str:
    value = request.COOKIES.get(THEME_COOKIE, "")
    return value if value in THEMES else ""


def _conversation_context(request: HttpRequest, session: Session | None) -> dict[str, Any]:
    rows = session_selectors.session_messages(session=session) if session else []
    return {
        "session": session,
        "blocks": blocks_from_rows(rows),
        "next_seq": session.message_count if session else 0,
        "sessions": _sessions(request),
        "current_id": session.pk if session else "",
    }


def _chat(request: HtmxHttpRequest, session: Session | None) -> HttpResponse:
    context = _conversation_context(request, session)
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "chat/_conversation.html", {**context, "oob": True})
    models = list(registry.models_enabled(user=request.user))
    # This chat's model; for a new chat the user's default (settings page), else the one they
    # used last; else the first.
    wanted = session.model_id if session else (
        default_model_of(request.user) or session_selectors.session_last_model(user=request.user)
    )
    selected = wanted if any(m.model_id == wanted for m in models) else ""
    context.update(
        models=models,
        agents=list(agents_for_user(user=request.user).only("name", "description")),  # pickable next to models
        selected_model=selected or (models[0].model_id if models else ""),
        error_text=json.dumps({**ERROR_TEXT, "": GENERIC}),
        settings_url=_settings_url(),
        tool_groups=tool_groups(request.user),
        templates=list(templates.template_list().only("id", "name", "description")),
        theme=_theme(request),
        no_models=NO_MODELS,
    )
    return render(request, "chat/chat.html", context)


# ---- views -----------------------------------------------------------------------------------


@csp
@login_required
@require_GET
@vary_on_headers("HX-Request")
def chat_new(request: HtmxHttpRequest) -> HttpResponse:
    """A new, empty chat (the session is created by the first message)."""
    return _chat(request, None)


@csp
@login_required
@require_GET
@vary_on_headers("HX-Request")
def chat_session(request: HtmxHttpRequest, session_id: str) -> HttpResponse:
    """One stored chat: the whole page, or the conversation partial for htmx."""
    return _chat(request, _session_for_user(request, session_id))


@csp
@login_required
@require_GET
def chat_messages(request: HttpRequest, session_id: str) -> HttpResponse:
    """Stored messages from ``from_seq`` on, rendered: replaces a turn once its stream is done."""
    session = _session_for_user(request, session_id)
    try:
        from_seq = max(0, int(request.GET.get("from_seq", "0")))
    except ValueError:
        from_seq = 0
    # A turn's tool results refer to calls made earlier in the same turn, which starts at from_seq.
    rows = session_selectors.session_messages(session=session, from_seq=from_seq)
    try:
        session.refresh_from_db(fields=["message_count"])
    except type(session).DoesNotExist:  # deleted meanwhile (another tab): gone, not a server error
        raise Http404("No such chat.") from None
    return render(
        request, "chat/_turn.html", {"session": session, "blocks": blocks_from_rows(rows), "next_seq": session.message_count}
    )


@csp
@login_required
@require_GET
def sidebar(request: HttpRequest) -> HttpResponse:
    """The list of the user's chats (refreshed when a stream creates or updates one)."""
    q = request.GET.get("q", "")[:200]
    return render(
        request, "chat/_session_list.html",
        {"sessions": _sessions(request, q), "current_id": request.GET.get("current", ""), "q": q},
    )


@csp
@login_required
@require_POST
def chat_delete(request: HtmxHttpRequest, session_id: str) -> HttpResponse:
    session = _session_for_user(request, session_id)
    session_store.session_delete(session=session)
    if not request.htmx:
        return redirect("chat:new")
    current = urlsplit(request.htmx.current_url or "").path
    if current.rstrip("/").endswith(f"/c/{session_id}"):
        # The open chat is gone: show a new chat in its place (the sidebar comes along out of band).
        return HttpResponseLocation("/", target="#conversation", swap="outerHTML")
    current_id = current.rstrip("/").rsplit("/", 1)[-1] if "/c/" in current else ""
    return render(request, "chat/_session_list.html", {"sessions": _sessions(request), "current_id": current_id})


@csp
@login_required
@require_GET
def template_fields(request: HttpRequest) -> HttpResponse:
    """One field per ``{{variable}}`` of the chosen prompt template."""
    key = request.GET.get("prompt_template", "")
    template = None
    if key:
        template = templates.template_find(id_or_name=key)
    variables = template_variables(template.content) if template else []
    return render(request, "chat/_template_fields.html", {"template": template, "variables": variables})


@login_required
@require_GET
def attachment(request: HttpRequest, session_id: str, name: str) -> FileResponse:
    """An image or audio clip stored with a message, for its owner only."""
    session = _session_for_user(request, session_id)
    if not ATTACHMENT_NAME_RE.match(name):
        raise Http404("No such file.")
    path = session_store.session_dir(session.pk) / name
    if not path.is_file():
        raise Http404("No such file.")
    response = FileResponse(path.open("rb"))
    response.headers["Cache-Control"] = "private, max-age=86400"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
