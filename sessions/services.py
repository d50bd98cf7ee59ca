"""Session services: start a run on a session, persist every message as it completes, release.

Every message is its own small transaction, written as soon as it is complete, so a failure
later in the run never loses what came before. The run lock is a row update in the database
(``run_token``), so several worker processes agree on "busy".
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shutil
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping, Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from agentsite.db import db_async
from agentsite.errors import ApiError
from inference import services as inference_services
from inference.engine import media
from inference.engine.errors import EngineError
from inference.engine.runtime import PreparedRun, RunControl, RunHooks
from inference.engine.types import AudioInput, InferenceResult, Message, ToolCall, Usage

from . import context, runs
from .models import Session, SessionMessage
from .selectors import session_get_for_user

SESSION_BUSY = "Session {session_id!r} is already running another request."
# A run holding the lock longer than this is presumed dead (its worker crashed).
STALE_RUN = timedelta(hours=2)
TITLE_MAX = 80


def session_dir(session_id: str) -> Path:
    return Path(settings.AGENTSITE["DATA_DIR"]) / "sessions" / session_id


# ---- attachments -----------------------------------------------------------------------------


def _store_attachments(session_id: str, message: Message) -> list[dict[str, Any]]:
    """Images/audio go to files under the data dir; the row keeps a small reference."""
    out: list[dict[str, Any]] = []
    folder = session_dir(session_id)
    for image in message.images:
        mime, bare = media.normalize_image(image)
        raw = base64.b64decode(bare)
        name = hashlib.sha256(raw).hexdigest()[:24] + "." + mime.split("/")[-1]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(raw)
        out.append({"type": "image", "file": name, "mime": mime, "bytes": len(raw)})
    for clip in message.audio:
        fmt, bare = media.normalize_audio(clip.data, clip.format)
        raw = base64.b64decode(bare)
        name = hashlib.sha256(raw).hexdigest()[:24] + "." + fmt
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(raw)
        out.append({"type": "audio", "file": name, "format": fmt, "bytes": len(raw)})
    return out


def _load_attachments(session_id: str, attachments: list[dict[str, Any]]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    images, audio = [], []
    for a in attachments:
        path = session_dir(session_id) / a["file"]
        if not path.exists():
            continue
        data = base64.b64encode(path.read_bytes()).decode()
        if a["type"] == "image":
            images.append(data)
        else:
            audio.append(AudioInput(data, a["format"]))
    return tuple(images), tuple(audio)


# ---- rows <-> messages -----------------------------------------------------------------------


def message_to_row_fields(message: Message) -> dict[str, Any]:
    return {
        "role": message.role,
        "content": message.content,
        "thinking": message.thinking,
        "tool_calls": [c.to_dict() for c in message.tool_calls],
        "tool_call_id": message.tool_call_id,
        "tool_id": message.tool_id,
        "tool_name": message.tool_name,
        "is_error": message.is_error,
        "duration_ms": message.duration_ms,
        "prompt_template": message.prompt_template,
        "arguments": dict(message.arguments) if message.arguments is not None else None,
        "incomplete": message.incomplete,
    }


def row_to_message(row: SessionMessage) -> Message:
    images, audio = _load_attachments(row.session_id, row.attachments) if row.attachments else ((), ())
    return Message(
        role=row.role,  # type: ignore[arg-type]
        content=row.content if isinstance(row.content, (str, list)) else str(row.content),
        thinking=row.thinking,
        images=images,
        audio=audio,
        tool_calls=tuple(
            ToolCall(id=c.get("id", ""), name=c.get("name", ""), arguments=c.get("arguments") or {}, tool_id=c.get("tool_id", ""))
            for c in row.tool_calls
        ),
        tool_call_id=row.tool_call_id,
        tool_id=row.tool_id,
        tool_name=row.tool_name,
        is_error=row.is_error,
        incomplete=row.incomplete,
    )


@transaction.atomic
def message_append(*, session_id: str, message: Message, error: dict[str, Any] | None = None) -> SessionMessage:
    """Append one message atomically: the row, the seq, the count and the title."""
    session = Session.objects.select_for_update().get(pk=session_id)
    seq = session.message_count
    attachments = _store_attachments(session_id, message) if (message.images or message.audio) else []
    row = SessionMessage.objects.create(session=session, seq=seq, attachments=attachments, error=error, **message_to_row_fields(message))
    session.message_count = seq + 1
    update = ["message_count", "updated_at"]
    if not session.title and message.role == "user":
        session.title = _title(message)
        update.append("title")
    session.save(update_fields=update)
    return row


def _title(message: Message) -> str:
    text = " ".join(message.text().split())
    if not text and message.images:
        text = "Image"
    return text if len(text) <= TITLE_MAX else text[: TITLE_MAX - 1] + "…"


def history_for_model(session: Session, *, before_seq: int | None = None) -> tuple[Message, ...]:
    """Summary + memory as one system note, then the turns not yet folded into the summary."""
    rows = SessionMessage.objects.filter(session=session, seq__gte=session.summarized_upto).order_by("seq")
    if before_seq is not None:
        rows = rows.filter(seq__lt=before_seq)
    messages = [row_to_message(r) for r in rows]
    note = []
    if session.summary:
        note.append(f"Summary of the earlier conversation:\n{session.summary}")
    if session.memory:
        note.append("Facts about the user from earlier turns:\n" + "\n".join(f"- {m}" for m in session.memory))
    if note:
        messages.insert(0, Message(role="system", content="\n\n".join(note)))
    return tuple(messages)


# ---- the run lifecycle -----------------------------------------------------------------------


def _acquire(session: Session) -> str:
    token = secrets.token_hex(8)
    now = timezone.now()
    got = Session.objects.filter(pk=session.pk).filter(Q(run_token="") | Q(run_started_at__lt=now - STALE_RUN)).update(
        run_token=token, run_started_at=now
    )
    if not got:
        raise ApiError("session_busy", SESSION_BUSY.format(session_id=session.pk), status_code=409)
    return token


def _release(session_id: str, token: str) -> None:
    Session.objects.filter(pk=session_id, run_token=token).update(run_token="", run_started_at=None)


class SessionHooks(RunHooks):
    def __init__(self, session_id: str, prepared: PreparedRun) -> None:
        self.session_id = session_id
        self.prepared = prepared

    async def on_message(self, message: Message) -> None:
        await db_async(message_append)(session_id=self.session_id, message=message)

    async def on_partial(self, message: Message, *, error: EngineError | None = None) -> None:
        if not (message.text() or message.thinking or error):
            return
        await db_async(message_append)(
            session_id=self.session_id, message=message, error=error.to_dict()["error"] if error else None
        )

    async def on_usage(self, sent: Sequence[Message], usage: Usage) -> None:
        if usage.prompt_tokens > 0:
            ratio = usage.prompt_tokens / max(1, context.message_chars(sent))
            await Session.objects.filter(pk=self.session_id).aupdate(tokens_per_char=ratio)

    async def on_done(self, result: InferenceResult) -> None:
        u = result.usage
        await Session.objects.filter(pk=self.session_id).aupdate(
            prompt_tokens=F("prompt_tokens") + u.prompt_tokens,
            completion_tokens=F("completion_tokens") + u.completion_tokens,
            total_tokens=F("total_tokens") + u.total_tokens,
            updated_at=timezone.now(),
        )
        if settings.AGENTSITE["MEMORY_EXTRACTION"] and result.finish_reason in ("stop", "max_tool_rounds") and result.content:
            session = await Session.objects.only("memory").aget(pk=self.session_id)
            turn = [m for m in self.prepared.input_messages if m.role == "user"]
            turn.append(Message(role="assistant", content=result.content))
            context.memory_extract_later(model=self.prepared.model, session_id=self.session_id, turn=turn, known=list(session.memory))


@dataclass
class BegunRun:
    prepared: PreparedRun
    hooks: RunHooks = field(default_factory=RunHooks)
    control: RunControl = field(default_factory=RunControl)
    session_id: str | None = None
    token: str = ""

    async def afit(self) -> None:
        """Fold old turns into the summary if the run would overflow the model's window."""
        if self.session_id:
            self.prepared = await context.afit_history(self.prepared, session_id=self.session_id)

    async def aend(self) -> None:
        if self.session_id:
            runs.unregister(self.session_id, self.control)
            await db_async(_release)(self.session_id, self.token)


def begin_run(*, user, data: Mapping[str, Any]) -> BegunRun:  # noqa: ANN001
    """Validate and prepare a run; with a session: lock it and store the input messages."""
    session_id = data.get("session_id")
    if not session_id:
        return BegunRun(prepared=inference_services.prepare_run(data=data))
    if session_id == "new":
        # Validate everything first, so a bad request leaves no empty session behind.
        prepared = inference_services.prepare_run(data=data)
        session = Session.objects.create(owner=user, model_id=data["model_id"])
        prepared = replace(prepared, session_id=session.pk, context=inference_services.tool_context(session_id=session.pk))
    else:
        session = session_get_for_user(session_id=session_id, user=user)
        prepared = None
    token = _acquire(session)
    try:
        if prepared is None:
            prepared = inference_services.prepare_run(data=data, history=history_for_model(session), session_id=session.pk)
        for message in prepared.input_messages:
            message_append(session_id=session.pk, message=message)
        Session.objects.filter(pk=session.pk).update(model_id=data["model_id"])
    except BaseException:
        _release(session.pk, token)
        raise
    control = RunControl()
    runs.register(session.pk, control)
    return BegunRun(prepared=prepared, hooks=SessionHooks(session.pk, prepared), control=control, session_id=session.pk, token=token)


def session_delete(*, session: Session) -> None:
    session_id = session.pk
    session.delete()
    shutil.rmtree(session_dir(session_id), ignore_errors=True)
    shutil.rmtree(Path(inference_services.scratch_dir_for(session_id)), ignore_errors=True)


def session_cancel(*, session: Session) -> None:
    """Stop the run in progress on this session, wherever it runs; 409 when none is."""
    session.refresh_from_db(fields=["run_token"])
    if not session.run_token:
        raise ApiError("not_running", f"Session {session.pk!r} has no run in progress.", status_code=409)
    runs.cancel(session.pk)
