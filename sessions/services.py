"""Session storage: the small interface the run lifecycle (in ``inference``) persists through.

Messages travel as plain records (the JSON shape of a message, as ``Message.to_dict`` and
``Message.from_dict`` in the engine read and write them) plus decoded attachments: this app
stores conversations and knows nothing about models or runs.

Every message is its own small transaction, written as soon as it is complete, so a failure
later in the run never loses what came before. The run lock is a row update in the database
(``run_token``), so several worker processes agree on "busy".
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from core.errors import Conflict, NotFound, ValidationFailed

from . import runs
from .models import Session, SessionMessage

SESSION_BUSY = "Session {session_id!r} is already running another request."
NOT_RUNNING = "Session {session_id!r} has no run in progress."
SESSION_GONE = "Session {session_id!r} no longer exists (deleted while its run was going)."
LOCK_LOST = "lost"  # heartbeat answers: the lease is gone (released by staff or taken over) ...
LOCK_CANCEL = "cancel"  # ... a cancel was requested ...
LOCK_HELD = "held"  # ... or the run goes on
TITLE_MAX = 80
RENAME_MAX = 200
EMPTY_TITLE = "A title needs at least one visible character."
NOTHING_TO_ANSWER = "Session {session_id!r} has no user message to answer again."
NOT_EDITABLE = "Message {seq} of session {session_id!r} is not a user message that can be edited."
FOLDED = "Message {seq} is folded into the session's summary and can no longer be edited."
MEMORY_MAX_FACTS = 40

# The stored fields of a message record; anything else in a record is ignored.
RECORD_FIELDS = (
    "role", "content", "thinking", "tool_calls", "tool_call_id", "tool_id", "tool_name", "is_error", "duration_ms",
    "prompt_template", "arguments", "incomplete",
)


@dataclass(frozen=True, slots=True)
class Attachment:
    """Decoded media stored beside a message: ``kind`` image (with ``mime``) or audio (``format``)."""

    kind: str
    raw: bytes
    mime: str = ""
    format: str = ""


@dataclass(frozen=True, slots=True)
class History:
    """What the model should see of a session: its summary, memory and unfolded records."""

    summary: str
    memory: tuple[str, ...]
    records: tuple[dict[str, Any], ...]


def session_dir(session_id: str) -> Path:
    """The session's folder under the data dir: its attachments (and the run's scratch folder)."""
    return Path(settings.AGENTSITE["DATA_DIR"]) / "sessions" / session_id


# ---- lifecycle -------------------------------------------------------------------------------


def session_create(*, owner: Any, model_id: str) -> Session:
    return Session.objects.create(owner=owner, model_id=model_id)


def _lease_s() -> float:
    return float(settings.AGENTSITE["RUN_LEASE_S"])


def _free(now: Any) -> Q:
    """Nobody holds the lock, or its holder stopped renewing it (its worker died)."""
    return Q(run_token="") | Q(run_lease_until__lt=now) | Q(run_lease_until__isnull=True)


def session_lock(*, session_id: str) -> str:
    """Take the session's run lease; 409 ``session_busy`` while another live run holds it."""
    token = secrets.token_hex(8)
    now = timezone.now()
    got = Session.objects.filter(pk=session_id).filter(_free(now)).update(
        run_token=token, run_started_at=now, run_lease_until=now + timedelta(seconds=_lease_s()), run_cancel_requested=False
    )
    if not got:
        raise Conflict(SESSION_BUSY.format(session_id=session_id), code="session_busy")
    return token


def session_heartbeat(*, session_id: str, token: str) -> str:
    """Renew the lease of the run holding ``token``: ``held``, ``cancel`` (asked to stop) or ``lost``."""
    renewed = Session.objects.filter(pk=session_id, run_token=token).update(
        run_lease_until=timezone.now() + timedelta(seconds=_lease_s())
    )
    if not renewed:
        return LOCK_LOST
    cancel = Session.objects.filter(pk=session_id).values_list("run_cancel_requested", flat=True).first()
    return LOCK_CANCEL if cancel else LOCK_HELD


def session_unlock(*, session_id: str, token: str) -> None:
    Session.objects.filter(pk=session_id, run_token=token).update(
        run_token="", run_started_at=None, run_lease_until=None, run_cancel_requested=False
    )


def session_force_unlock(*, session: Session) -> bool:
    """Staff release a lock (the admin's action); the run, if it still goes, stops at its next heartbeat."""
    return bool(Session.objects.filter(pk=session.pk).exclude(run_token="").update(
        run_token="", run_started_at=None, run_lease_until=None, run_cancel_requested=False
    ))


def session_rename(*, session: Session, title: str) -> Session:
    """A title as shown in one line: whitespace collapsed, never empty."""
    clean = " ".join(title.split())[:RENAME_MAX]
    if not clean:
        raise ValidationFailed(f"title: {EMPTY_TITLE}", detail={"title": [EMPTY_TITLE]})
    session.title = clean
    session.save(update_fields=["title", "updated_at"])
    return session


def session_delete(*, session: Session) -> None:
    session_id = session.pk
    session.delete()
    shutil.rmtree(session_dir(session_id), ignore_errors=True)


def session_cancel(*, session: Session) -> None:
    """Stop the run in progress on this session, wherever it runs; 409 when none is.

    The request is recorded on the lease too, so the run's own heartbeat sees it even if the
    signal never reaches its worker; a run whose worker died (lease expired) is released here.
    """
    now = timezone.now()
    if Session.objects.filter(pk=session.pk).filter(_free(now)).exclude(run_token="").update(
        run_token="", run_started_at=None, run_lease_until=None, run_cancel_requested=False
    ):
        return
    if not Session.objects.filter(pk=session.pk).exclude(run_token="").update(run_cancel_requested=True):
        raise Conflict(NOT_RUNNING.format(session_id=session.pk), code="not_running")
    runs.cancel(session.pk)


# ---- messages --------------------------------------------------------------------------------


def _store_attachments(session_id: str, attachments: Sequence[Attachment]) -> list[dict[str, Any]]:
    """Media go to files under the session's folder; the row keeps a small reference."""
    out: list[dict[str, Any]] = []
    folder = session_dir(session_id)
    for a in attachments:
        ext = a.mime.split("/")[-1] if a.kind == "image" else a.format
        name = hashlib.sha256(a.raw).hexdigest()[:24] + "." + ext
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(a.raw)
        ref: dict[str, Any] = {"type": a.kind, "file": name, "bytes": len(a.raw)}
        ref.update({"mime": a.mime} if a.kind == "image" else {"format": a.format})
        out.append(ref)
    return out


def _title(record: Mapping[str, Any], has_media: bool) -> str:
    content = record.get("content")
    text = " ".join(content.split()) if isinstance(content, str) else ""
    if not text and has_media:
        text = "Image"
    return text if len(text) <= TITLE_MAX else text[: TITLE_MAX - 1] + "…"


@transaction.atomic
def message_append(
    *,
    session_id: str,
    record: Mapping[str, Any],
    attachments: Sequence[Attachment] = (),
    error: dict[str, Any] | None = None,
    replace_seq: int | None = None,
) -> SessionMessage:
    """Append one message atomically: the row, the seq, the count and the title.

    With ``replace_seq`` the message takes the place of that earlier row instead (a draft the
    run saved while it streamed), keeping its position in the conversation.
    """
    session = Session.objects.select_for_update().filter(pk=session_id).first()
    if session is None:
        raise NotFound(SESSION_GONE.format(session_id=session_id), code="session_not_found")
    fields = {k: record[k] for k in RECORD_FIELDS if k in record and record[k] is not None}
    if replace_seq is not None:
        row = SessionMessage.objects.get(session=session, seq=replace_seq)
        for key in RECORD_FIELDS:
            if key in fields:
                setattr(row, key, fields[key])
        row.incomplete, row.error = bool(fields.get("incomplete")), error
        row.save()
        session.save(update_fields=["updated_at"])
        return row
    seq = session.message_count
    row = SessionMessage.objects.create(
        session=session, seq=seq, attachments=_store_attachments(session_id, attachments), error=error, **fields
    )
    session.message_count = seq + 1
    update = ["message_count", "updated_at"]
    if not session.title and record.get("role") == "user":
        session.title = _title(record, bool(attachments))
        update.append("title")
    session.save(update_fields=update)
    return row


def _record(row: SessionMessage) -> dict[str, Any]:
    """A stored message as a record, its media loaded back as base64 (``images``/``audio``)."""
    record: dict[str, Any] = {
        "role": row.role, "content": row.content, "thinking": row.thinking, "tool_calls": row.tool_calls,
        "tool_call_id": row.tool_call_id, "tool_id": row.tool_id, "tool_name": row.tool_name, "is_error": row.is_error,
        "incomplete": row.incomplete,
    }
    images, audio = [], []
    for a in row.attachments or ():
        path = session_dir(row.session_id) / a["file"]
        if not path.exists():
            continue
        data = base64.b64encode(path.read_bytes()).decode()
        if a["type"] == "image":
            images.append(data)
        else:
            audio.append({"data": data, "format": a["format"]})
    if images:
        record["images"] = images
    if audio:
        record["audio"] = audio
    return record


def _live(session: Session) -> QuerySet[SessionMessage]:
    """Rows the model still sees: not folded into the summary, not superseded."""
    return SessionMessage.objects.filter(session=session, seq__gte=session.summarized_upto, superseded=False)


def session_history(*, session_id: str, before_seq: int | None = None) -> History:
    """The records not yet folded into the summary (before ``before_seq``, when given)."""
    session = Session.objects.get(pk=session_id)
    rows = _live(session).order_by("seq")
    if before_seq is not None:
        rows = rows.filter(seq__lt=before_seq)
    return History(session.summary, tuple(session.memory), tuple(_record(r) for r in rows))


def session_unfolded(*, session_id: str, before_seq: int) -> list[tuple[int, dict[str, Any]]]:
    """``(seq, record)`` of the turns that could still be folded into the summary."""
    session = Session.objects.get(pk=session_id)
    rows = _live(session).filter(seq__lt=before_seq).order_by("seq")
    return [(r.seq, _record(r)) for r in rows]


# ---- answering again: regenerate and edit ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rewind:
    """Where a regenerate or an edit starts over: rows from ``from_seq`` on are superseded, and
    ``record`` (an edit's new user message, with the old one's media) is the run's new input."""

    from_seq: int
    record: dict[str, Any] | None = None


def rewind_for_regenerate(*, session_id: str) -> Rewind:
    """Answer the last user message again: everything after it is superseded."""
    session = Session.objects.get(pk=session_id)
    last = _live(session).filter(role="user").order_by("-seq").values_list("seq", flat=True).first()
    if last is None:
        raise Conflict(NOTHING_TO_ANSWER.format(session_id=session_id), code="nothing_to_regenerate")
    return Rewind(from_seq=last + 1)


def rewind_for_edit(*, session_id: str, seq: int, content: str) -> Rewind:
    """Replace user message ``seq`` (and all after it) by ``content``, keeping its images and audio."""
    session = Session.objects.get(pk=session_id)
    row = SessionMessage.objects.filter(session=session, seq=seq, role="user", superseded=False).first()
    if row is None:
        message = NOT_EDITABLE.format(seq=seq, session_id=session_id)
        raise ValidationFailed(f"seq: {message}", detail={"seq": [message]})
    if seq < session.summarized_upto:
        raise Conflict(FOLDED.format(seq=seq), code="message_folded")
    old = _record(row)
    record: dict[str, Any] = {"role": "user", "content": content}
    record.update({k: old[k] for k in ("images", "audio") if k in old})
    return Rewind(from_seq=seq, record=record)


def messages_supersede(*, session_id: str, from_seq: int) -> int:
    """Mark the rows from ``from_seq`` on as superseded (kept, but no longer sent to the model)."""
    return SessionMessage.objects.filter(session_id=session_id, seq__gte=from_seq, superseded=False).update(superseded=True)


def message_usage_set(*, session_id: str, seq: int, usage: dict[str, Any]) -> None:
    SessionMessage.objects.filter(session_id=session_id, seq=seq).update(usage=usage)


# ---- summary, memory, usage ------------------------------------------------------------------


def session_set_model(*, session_id: str, model_id: str) -> None:
    Session.objects.filter(pk=session_id).update(model_id=model_id)


def summary_set(*, session_id: str, summary: str, upto: int) -> None:
    Session.objects.filter(pk=session_id).update(summary=summary, summarized_upto=upto)


def tokens_per_char_set(*, session_id: str, ratio: float) -> None:
    Session.objects.filter(pk=session_id).update(tokens_per_char=ratio)


def usage_add(*, session_id: str, prompt_tokens: int, completion_tokens: int, total_tokens: int) -> None:
    Session.objects.filter(pk=session_id).update(
        prompt_tokens=F("prompt_tokens") + prompt_tokens,
        completion_tokens=F("completion_tokens") + completion_tokens,
        total_tokens=F("total_tokens") + total_tokens,
        updated_at=timezone.now(),
    )


@transaction.atomic
def memory_merge(*, session_id: str, facts: Sequence[str]) -> list[str]:
    """Add new facts (case-insensitively deduplicated), keeping the newest ``MEMORY_MAX_FACTS``."""
    session = Session.objects.select_for_update().filter(pk=session_id).first()
    if session is None:
        return []
    known = list(session.memory)
    seen = {f.casefold().rstrip(".") for f in known}
    for fact in facts:
        key = fact.casefold().rstrip(".")
        if key not in seen:
            seen.add(key)
            known.append(fact)
    known = known[-MEMORY_MAX_FACTS:]  # bounded: the oldest facts give way
    Session.objects.filter(pk=session_id).update(memory=known)
    return known
