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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import transaction

from core.db import db_async
from core.secrets import scrub_data
from inference.engine import DomainError, InferenceResult, Message, PreparedRun, RunControl, RunHooks, Runtime, Usage, media
from registry import live_settings
from sessions import runs
from sessions import selectors as session_selectors
from sessions import services as session_store
from sessions.models import SessionMessage
from sessions.services import Attachment, Rewind
from usage.selectors import quota_effective
from usage.services import quota_check

from . import context
from .agent_requests import agent_defaults
from .metering import Caller, ModelCallRecord, UsageHooks, caller_for
from .services import from_snapshot, get_runtime, inference_request, runtime_for, scratch_owner


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
    # Stored scrubbed: a tool result or an upstream error may quote a secret; what is stored is
    # shown again later (session reads, the chat, the admin).
    return session_store.message_append(
        session_id=session_id, record=scrub_data(record), attachments=attachments,
        error=scrub_data(error) if error else None, replace_seq=replace_seq,
    )


class SessionHooks(UsageHooks):
    """Persists a run on its session as it happens, and holds the session's lease meanwhile.

    The answer of a streaming round is saved as an ``incomplete`` draft every few seconds
    (``on_checkpoint``) and replaced in place by the finished message, so a worker that dies
    leaves the partial answer behind. A heartbeat renews the lease; it also notices a cancel
    recorded on the lease and a lease released by staff, and stops the run then. The lease is
    released by the run's own task (``on_end``), whatever the client does.
    """

    def __init__(
        self, session_id: str, prepared: PreparedRun, *, control: RunControl, token: str, caller: Caller, memory_extraction: bool
    ) -> None:
        super().__init__(caller=caller, session_id=session_id)
        self.session_id = session_id
        self.prepared = prepared
        self.memory_extraction = memory_extraction
        self.control = control
        self.token = token
        self.draft_seq: int | None = None
        self.answer_seq: int | None = None  # the run's last assistant message: its usage goes there
        self.heartbeat: asyncio.Task[None] | None = None
        self.ended = False
        self.started = time.monotonic()

    async def on_start(self) -> None:
        self.started = time.monotonic()
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
        row = await db_async(self._store)(message, self.usage_pending(), self.draft_seq)
        if message.role == "assistant":
            self.answer_seq = row.seq
        self.draft_seq = None

    def _store(self, message: Message, calls: list[ModelCallRecord], draft_seq: int | None) -> SessionMessage:
        """A round's message and its usage record in one trip to the ORM's thread: the record
        survives a worker that dies later in the run, at no extra round trip. The record goes
        first, so a message that cannot be stored (the session deleted meanwhile) still leaves
        the call counted."""
        self.usage_write(calls)
        return message_store(session_id=self.session_id, message=message, replace_seq=draft_seq)

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
        await db_async(self._release)(self.usage_pending())

    def _release(self, calls: list[ModelCallRecord]) -> None:
        """Unlock the session and write the records of rounds that left no message (failed or
        cancelled): one trip to the ORM's thread for both."""
        session_store.session_unlock(session_id=self.session_id, token=self.token)
        self.usage_write(calls)

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
        if self.answer_seq is not None:  # shown under the answer, in the chat and after a reload
            run_usage = {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                         "total_tokens": u.total_tokens, "duration_ms": round((time.monotonic() - self.started) * 1000)}
            await db_async(session_store.message_usage_set)(session_id=self.session_id, seq=self.answer_seq, usage=run_usage)
        if self.memory_extraction and result.finish_reason in ("stop", "max_tool_rounds") and result.content:
            session = await db_async(session_selectors.session_state)(session_id=self.session_id)
            turn = [m for m in self.prepared.input_messages if m.role == "user"]
            turn.append(Message(role="assistant", content=result.content))
            context.memory_extract_later(
                model=self.prepared.model, session_id=self.session_id, turn=turn, known=list(session.memory),
                caller=self.caller,
            )


@dataclass
class Run:
    """A prepared run and, with a session, its hooks (which hold the session's lease).

    Once the run has started, its own task releases the lease (``SessionHooks.on_end``);
    ``arelease`` is for a run that fails before it starts. ``conf``: the settings in effect when
    it began (``registry.live_settings``), which it keeps to the end.
    """

    prepared: PreparedRun
    conf: Mapping[str, Any]
    hooks: RunHooks = field(default_factory=RunHooks)
    control: RunControl = field(default_factory=RunControl)
    session_id: str | None = None
    caller: Caller | None = None  # whom the run's model calls are counted against

    @property
    def runtime(self) -> Runtime:
        """The runtime to run it with: built from ``conf`` (no query, so also on the event loop)."""
        return get_runtime(self.conf)

    async def afit(self) -> None:
        """Fold old turns into the summary if the run would overflow the model's window."""
        if self.session_id and self.caller is not None:
            self.prepared = await context.afit_history(self.prepared, session_id=self.session_id, caller=self.caller)

    async def arelease(self) -> None:
        await self.hooks.on_end()


def run_begin(*, user: Any, data: Mapping[str, Any], agent: str = "") -> Run:
    """Validate and prepare a run; with a session: lock it and store the input messages (sync).
    Models and tools resolve as ``user`` may see them (``runtime_for``).

    First of all the caller's quota is checked (429 before any model call, counting this
    request against the rate); every model call of the run is then recorded against the
    caller, their API key and ``agent`` (``UsageHooks``).
    """
    quota_check(user=user)
    data = agent_defaults(user=user, data=data)
    caller = caller_for(user, agent=data.get("agent") or agent)
    conf = live_settings.current()
    runtime = runtime_for(user, conf)
    session_id = data.get("session_id")
    if not session_id:
        request = inference_request(data=data, limits=runtime.limits)
        stateless = runtime.prepare(request, owner=scratch_owner(user))  # bash: the caller's folder
        return Run(prepared=stateless, conf=conf, hooks=UsageHooks(caller=caller), caller=caller)
    prepared: PreparedRun | None = None
    if session_id == "new":
        # Validate everything first, so a bad request leaves no empty session behind.
        prepared = runtime.prepare(inference_request(data=data, limits=runtime.limits))
        session = session_store.session_create(owner=user, model_id=data["model_id"])
        prepared = replace(prepared, session_id=session.pk, context=runtime.tool_context(session.pk))
    else:
        session = session_selectors.session_get_for_user(session_id=session_id, user=user)
    token = session_store.session_lock(session_id=session.pk)
    try:
        if prepared is None:
            history = context.history_messages(session_id=session.pk)
            request = inference_request(data=data, limits=runtime.limits, session_id=session.pk)
            prepared = runtime.prepare(request, history=history)
        for message in prepared.input_messages:
            message_store(session_id=session.pk, message=message)
        session_store.session_set_model(session_id=session.pk, model_id=data["model_id"])
    except BaseException:
        session_store.session_unlock(session_id=session.pk, token=token)
        raise
    return _session_run(session.pk, prepared, token, caller, conf)


def run_begin_here(*, user: Any, data: Mapping[str, Any]) -> Run | None:
    """``run_begin`` for a stateless run, on the event loop, when the warm registry snapshot
    answers every read it makes (``from_snapshot``); None for a session, or a quota to count
    (Redis or the database), or whatever the snapshot has not loaded yet."""
    if data.get("session_id"):
        return None

    def begin() -> Run | None:
        if quota_effective(user=user) is not None:
            return None
        return run_begin(user=user, data=data)

    return from_snapshot(begin)


def _session_run(session_id: str, prepared: PreparedRun, token: str, caller: Caller, conf: Mapping[str, Any]) -> Run:
    control = RunControl()
    runs.register(session_id, control)
    hooks = SessionHooks(session_id, prepared, control=control, token=token, caller=caller,
                         memory_extraction=conf["MEMORY_EXTRACTION"])
    return Run(prepared=prepared, conf=conf, hooks=hooks, control=control, session_id=session_id, caller=caller)


def run_begin_again(*, user: Any, session_id: str, data: Mapping[str, Any], edit: Mapping[str, Any] | None = None) -> Run:
    """Regenerate (``edit`` None) or edit-and-resend (``edit`` = ``{"seq", "content"}``) (sync).

    The same lifecycle as ``run_begin``: lock, prepare, store. What is answered again is
    superseded, not deleted (kept in the stored history, no longer sent to the model), and only
    once the run is prepared, so a refused request changes nothing. ``data`` may leave out
    ``model_id``: the session's model answers again.
    """
    quota_check(user=user)
    caller = caller_for(user)
    conf = live_settings.current()
    runtime = runtime_for(user, conf)
    session = session_selectors.session_get_for_user(session_id=session_id, user=user)
    token = session_store.session_lock(session_id=session.pk)
    try:
        rewind: Rewind = (
            session_store.rewind_for_edit(session_id=session.pk, seq=edit["seq"], content=edit["content"])
            if edit is not None else session_store.rewind_for_regenerate(session_id=session.pk)
        )
        request = {**data, "model_id": data.get("model_id") or session.model_id,
                   "messages": [rewind.record] if rewind.record else []}
        history = context.history_messages(session_id=session.pk, before_seq=rewind.from_seq)
        prepared = runtime.prepare(inference_request(data=request, limits=runtime.limits, session_id=session.pk), history=history)
        with transaction.atomic():
            session_store.messages_supersede(session_id=session.pk, from_seq=rewind.from_seq)
            for message in prepared.input_messages:
                message_store(session_id=session.pk, message=message)
            session_store.session_set_model(session_id=session.pk, model_id=request["model_id"])
    except BaseException:
        session_store.session_unlock(session_id=session.pk, token=token)
        raise
    return _session_run(session.pk, prepared, token, caller, conf)
