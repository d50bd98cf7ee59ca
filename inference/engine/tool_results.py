"""What of a tool's result goes to the model (docs/mcp.md "Results").

A tool may return megabytes (a file read, a database dump) or images; the direct call
(``/v1/tools/call``) answers all of it, but the model gets at most ``max_chars`` characters of
text, with a note of what was cut, and images only when it has vision (a short note stands in
otherwise), so one large result neither floods the context window nor fails the request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .types import ContentItem

CUT_NOTE = (
    "\n\n[agentsite: {cut:,} of {total:,} characters of this tool result were cut "
    "(AGENTSITE_TOOL_RESULT_MAX_CHARS is {limit:,}); the direct call returns all of it.]"
)
IMAGE_NOTE = "[agentsite: the tool returned an image ({mime}), not shown: this model has no vision.]"


def for_model(content: Iterable[ContentItem], *, vision: bool, max_chars: int) -> list[ContentItem]:
    """``content`` as the model gets it; ``max_chars`` 0 means no cap."""
    items = [_without_image(item) if not vision and item.get("type") == "image" else item for item in content]
    if max_chars <= 0:
        return items
    total = sum(len(_text(item)) for item in items)
    if total <= max_chars:
        return items
    out: list[ContentItem] = []
    room = max_chars
    for item in items:
        text = _text(item)
        if not text:
            out.append(item)
        elif room > 0:
            out.append(_with_text(item, text[:room]))
        room -= len(text)
    out.append({"type": "text", "text": CUT_NOTE.format(cut=total - max_chars, total=total, limit=max_chars)})
    return out


def _text(item: ContentItem) -> str:
    if item.get("type") == "text":
        return str(item.get("text") or "")
    resource = item.get("resource")
    if item.get("type") == "resource" and isinstance(resource, dict):
        return str(resource.get("text") or "")
    return ""


def _with_text(item: ContentItem, text: str) -> ContentItem:
    if item.get("type") == "text":
        return {**item, "text": text}
    resource: dict[str, Any] = dict(item["resource"])
    return {**item, "resource": {**resource, "text": text}}


def _without_image(item: ContentItem) -> ContentItem:
    return {"type": "text", "text": IMAGE_NOTE.format(mime=item.get("mimeType") or "image")}
