"""A conversation as a download: Markdown for reading, JSON for keeping (every stored field)."""

from __future__ import annotations

import json
from typing import Any

from .models import Session, SessionMessage
from .serializers import SessionDetailSerializer

FORMATS = ("markdown", "json")
UNKNOWN_FORMAT = "format must be one of: markdown, json."


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for item in content or []:
        if isinstance(item, dict) and item.get("type") == "text":
            parts.append(str(item.get("text", "")))
        elif isinstance(item, dict):
            parts.append(f"[{item.get('type', 'item')}]")
    return "\n".join(parts)


def _fence(text: str) -> str:
    """A code fence longer than any backtick run inside, so tool output cannot close it early."""
    ticks = "`" * max(3, _backtick_run(text) + 1)
    return f"{ticks}\n{text}\n{ticks}"


def _backtick_run(text: str) -> int:
    best = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        best = max(best, run)
    return best


def _message_markdown(row: SessionMessage) -> str:
    if row.role == "user":
        head = "## User" + (f" (template {row.prompt_template})" if row.prompt_template else "")
        media = "".join(f"\n\n[{a.get('type', 'file')} attached]" for a in row.attachments or [])
        return f"{head}\n\n{_text(row.content)}{media}"
    if row.role == "system":
        return f"## System\n\n{_text(row.content)}"
    if row.role == "tool":
        label = "Tool error" if row.is_error else "Tool result"
        return f"**{label}** `{row.tool_id or row.tool_name}`\n\n{_fence(_text(row.content))}"
    lines = ["## Assistant"]
    if row.thinking:
        lines.append("<details><summary>Thinking</summary>\n\n" + row.thinking + "\n\n</details>")
    if _text(row.content):
        lines.append(_text(row.content))
    for call in row.tool_calls or []:
        args = json.dumps(call.get("arguments") or {}, ensure_ascii=False, indent=2)
        lines.append(f"**Tool call** `{call.get('tool_id') or call.get('name')}`\n\n{_fence(args)}")
    if row.error:
        lines.append(f"> Error: {row.error.get('message', '')}")
    elif row.incomplete:
        lines.append("> (stopped: partial answer)")
    return "\n\n".join(lines)


def session_markdown(*, session: Session) -> str:
    """The conversation as the model last saw it (superseded answers and edits left out)."""
    rows = SessionMessage.objects.filter(session=session, superseded=False).order_by("seq")
    head = f"# {session.title or 'Untitled chat'}\n\nModel: {session.model_id or '-'} · {session.created_at:%Y-%m-%d %H:%M} UTC"
    return "\n\n".join([head, *(_message_markdown(r) for r in rows)]) + "\n"


def session_json(*, session: Session) -> str:
    """Everything ``GET /v1/sessions/{id}`` answers, superseded messages included."""
    return json.dumps(SessionDetailSerializer(session).data, ensure_ascii=False, indent=2)
