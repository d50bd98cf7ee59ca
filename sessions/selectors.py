"""Session reads, always scoped to the owner: another user's session is simply not found."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from core.errors import NotFound

from .models import Session, SessionMessage

SESSION_NOT_FOUND = "No session with id {session_id!r}."
SEARCH_MAX = 200  # characters of a search that count: a longer one is cut, not scanned for


def session_get_for_user(*, session_id: str, user: Any) -> Session:
    session = Session.objects.filter(pk=session_id, owner=user).first()
    if session is None:
        raise NotFound(SESSION_NOT_FOUND.format(session_id=session_id), code="session_not_found")
    return session


def session_list_for_user(*, user: Any, q: str = "") -> QuerySet[Session]:
    """The user's sessions, newest first; with ``q``, those whose title or any message text has it."""
    sessions = Session.objects.filter(owner=user).order_by("-updated_at")
    q = q.strip()[:SEARCH_MAX]
    if q:
        matching = SessionMessage.objects.filter(session__owner=user, content__icontains=q).values("session_id")
        sessions = sessions.filter(Q(title__icontains=q) | Q(pk__in=matching))
    return sessions


def session_last_model(*, user: Any) -> str:
    """The model of the user's most recently used chat ("" when none): the chat's default pick."""
    return Session.objects.filter(owner=user).exclude(model_id="").order_by("-updated_at").values_list(
        "model_id", flat=True
    ).first() or ""


def session_messages(*, session: Session, from_seq: int = 0) -> QuerySet[SessionMessage]:
    return SessionMessage.objects.filter(session=session, seq__gte=from_seq).order_by("seq")


def session_state(*, session_id: str) -> Session:
    """The session row (summary, memory, counters) as it is now."""
    return Session.objects.get(pk=session_id)
