"""The run lifecycle on the server: begin (authorize, prepare, lock, store the input), run
(the engine), persist (hooks that store every message as it completes), end (release).

``/v1/infer``, ``/v1/infer/stream`` and the chat pages (which call ``/v1/infer/stream``) all go
through ``run_begin``; preparation itself is the engine's ``Runtime.prepare``, the same code SDK
users run. Sessions are storage behind ``sessions.services``; this module is the only place
that turns engine messages into stored records.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings

from core.db import db_async
from inference.engine import DomainError, InferenceResult, Message, PreparedRun, RunControl, RunHooks, Usage, media
from sessions import runs
from sessions import selectors as session_selectors
from sessions import services as session_store
from sessions.models import SessionMessage
from sessions.services import Attachment

from . import context
from .services import inference_request, runtime_for, scratch_owner


def message_record(message: Message) -> tuple[dict[str, Any], list[Attachment]]:
    """A message as a stored record, with its media decoded into attachments."""
    record = {
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
    attachments = []
    for image in message.images:
        mime, bare = media.normalize_image(image)
        attachments.append(Attachment("image", base64.b64decode(bare), mime=mime))
    for clip in message.audio:
        fmt, bare = media.normalize_audio(clip.data, clip.format)
        attachments.append(Attachment("audio", base64.b64decode(bare), format=fmt))
    return record, attachments


def message_store(
    *, session_id: str, message: Message, error: dict[str, Any] | None = None, replace_seq: int | None = None
) -> SessionMessage:
    record, attachments = message_record(message)
    return session_store.message_append(
        session_id=session_id, record=record, attachments=attachments, error=error, replace_seq=replace_seq
    )


class SessionHooks(RunHooks):
    """Persists a run on its session as it happens, and holds the session's lease meanwhile.

    The answer of a streaming round is saved as an ``incomplete`` draft every few seconds
    (``on_checkpoint``) and replaced in place by the finished message, so a worker that dies
    leaves the partial answer behind. A heartbeat renews the lease; it also notices a cancel
    recorded on the lease and a lease released by staff, and stops the run then. The lease is
    released by the run's own task (``on_end``), whatever the client does.
    """

    def __init__(self, session_id: str, prepared: PreparedRun, *, control: RunControl, token: str) -> None:
        self.session_id = session_id
        self.prepared = prepared
        self.control = control
        self.token = token
        self.draft_seq: int | None = None
        self.heartbeat: asyncio.Task[None] | None = None
        self.ended = False

    async def on_start(self) -> None:
        self.heartbeat = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        every = settings.AGENTSITE["RUN_LEASE_S"] / 3
        while True:
            await asyncio.sleep(every)
            state = await db_async(session_store.session_heartbeat)(session_id=self.session_id, token=self.token)
            if state != session_store.LOCK_HELD:
                self.control.cancel()
                return

    async def on_checkpoint(self, message: Message) -> None:
        row = await db_async(message_store)(session_id=self.session_id, message=message, replace_seq=self.draft_seq)
        self.draft_seq = row.seq

    async def on_message(self, message: Message) -> None:
        await db_async(message_store)(session_id=self.session_id, message=message, replace_seq=self.draft_seq)
        self.draft_seq = None

    async def on_partial(self, message: Message, *, error: DomainError | None = None) -> None:
        if not (message.text() or message.thinking or error or self.draft_seq is not None):
            return
        envelope = error.to_dict()["error"] if error else None
        await db_async(message_store)(session_id=self.session_id, message=message, error=envelope, replace_seq=self.draft_seq)
        self.draft_seq = None

    async def on_end(self) -> None:
        if self.ended:
            return
        self.ended = True
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        runs.unregister(self.session_id, self.control)
        await db_async(session_store.session_unlock)(session_id=self.session_id, token=self.token)

    async def on_usage(self, sent: Sequence[Message], usage: Usage) -> None:
        if usage.prompt_tokens > 0:
            ratio = usage.prompt_tokens / max(1, context.message_chars(sent))
            await db_async(session_store.tokens_per_char_set)(session_id=self.session_id, ratio=ratio)

    async def on_done(self, result: InferenceResult) -> None:
        u = result.usage
        await db_async(session_store.usage_add)(
            session_id=self.session_id, prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens,
            total_tokens=u.total_tokens,
        )
        if settings.AGENTSITE["MEMORY_EXTRACTION"] and result.finish_reason in ("stop", "max_tool_rounds") and result.content:
            session = await db_async(session_selectors.session_state)(session_id=self.session_id)
            turn = [m for m in self.prepared.input_messages if m.role == "user"]
            turn.append(Message(role="assistant", content=result.content))
            context.memory_extract_later(
                model=self.prepared.model, session_id=self.session_id, turn=turn, known=list(session.memory)
            )


@dataclass
class Run:
    """A prepared run and, with a session, its hooks (which hold the session's lease).

    Once the run has started, its own task releases the lease (``SessionHooks.on_end``);
    ``arelease`` is for a run that fails before it starts.
    """

    prepared: PreparedRun
    hooks: RunHooks = field(default_factory=RunHooks)
    control: RunControl = field(default_factory=RunControl)
    session_id: str | None = None

    async def afit(self) -> None:
        """Fold old turns into the summary if the run would overflow the model's window."""
        if self.session_id:
            self.prepared = await context.afit_history(self.prepared, session_id=self.session_id)

    async def arelease(self) -> None:
        await self.hooks.on_end()


def run_begin(*, user: Any, data: Mapping[str, Any]) -> Run:
    """Validate and prepare a run; with a session: lock it and store the input messages (sync).
    Models and tools resolve as ``user`` may see them (``runtime_for``)."""
    runtime = runtime_for(user)
    session_id = data.get("session_id")
    if not session_id:
        return Run(prepared=runtime.prepare(inference_request(data=data), owner=scratch_owner(user)))  # bash: the caller's folder
    prepared: PreparedRun | None = None
    if session_id == "new":
        # Validate everything first, so a bad request leaves no empty session behind.
        prepared = runtime.prepare(inference_request(data=data))
        session = session_store.session_create(owner=user, model_id=data["model_id"])
        prepared = replace(prepared, session_id=session.pk, context=runtime.tool_context(session.pk))
    else:
        session = session_selectors.session_get_for_user(session_id=session_id, user=user)
    token = session_store.session_lock(session_id=session.pk)
    try:
        if prepared is None:
            history = context.history_messages(session_id=session.pk)
            prepared = runtime.prepare(inference_request(data=data, session_id=session.pk), history=history)
        for message in prepared.input_messages:
            message_store(session_id=session.pk, message=message)
        session_store.session_set_model(session_id=session.pk, model_id=data["model_id"])
    except BaseException:
        session_store.session_unlock(session_id=session.pk, token=token)
        raise
    control = RunControl()
    runs.register(session.pk, control)
    hooks = SessionHooks(session.pk, prepared, control=control, token=token)
    return Run(prepared=prepared, hooks=hooks, control=control, session_id=session.pk)
