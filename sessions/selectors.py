"""Session reads, always scoped to the owner: another user's session is simply not found."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from core.errors import NotFound

from .models import Session, SessionMessage

SESSION_NOT_FOUND = "No session with id {session_id!r}."


def session_get_for_user(*, session_id: str, user: Any) -> Session:
    session = Session.objects.filter(pk=session_id, owner=user).first()
    if session is None:
        raise NotFound(SESSION_NOT_FOUND.format(session_id=session_id), code="session_not_found")
    return session


def session_list_for_user(*, user: Any) -> QuerySet[Session]:
    return Session.objects.filter(owner=user).order_by("-updated_at")


def session_messages(*, session: Session, from_seq: int = 0) -> QuerySet[SessionMessage]:
    return SessionMessage.objects.filter(session=session, seq__gte=from_seq).order_by("seq")


def session_state(*, session_id: str) -> Session:
    """The session row (summary, memory, counters) as it is now."""
    return Session.objects.get(pk=session_id)
