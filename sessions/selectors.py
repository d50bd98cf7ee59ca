"""Session reads, always scoped to the owner: another user's session is simply not found."""

from __future__ import annotations

from agentsite.errors import ApiError

from .models import Session

SESSION_NOT_FOUND = "No session with id {session_id!r}."


def session_get_for_user(*, session_id: str, user) -> Session:  # noqa: ANN001
    session = Session.objects.filter(pk=session_id, owner=user).first()
    if session is None:
        raise ApiError("session_not_found", SESSION_NOT_FOUND.format(session_id=session_id), status_code=404)
    return session


def session_list_for_user(*, user):  # noqa: ANN001, ANN201
    return Session.objects.filter(owner=user).order_by("-updated_at")
