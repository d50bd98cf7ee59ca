"""Usage metering for every model call the server makes: run rounds (through the run's hooks),
summaries and memory extraction (``record_call``). Quotas are checked in ``run_begin``.

A run round's record is written as soon as the round's message is complete (``on_message``),
so a worker that dies later in the run (in a tool call, in the next round) keeps it. With a
session the record rides along in the trip that stores the message (``SessionHooks``), so that
costs no extra database round trip; a round that fails or is cancelled has no message and is
written when the run ends (``on_end`` always runs, in the run's own task).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from accounts.services import api_key_id_of
from core.db import db_async, pooled
from inference.engine import Message, ModelCall, RunHooks, Usage
from usage.models import Kind, Outcome
from usage.services import Caller, ModelCallRecord, model_call, usage_record, usage_record_behind

__all__ = ["Caller", "Kind", "ModelCallRecord", "UsageHooks", "ametered", "caller_for", "usage_record"]

T = TypeVar("T")


def caller_for(user: Any, *, agent: str = "") -> Caller:
    """Who a run's model calls are counted against: the user and the API key they came with."""
    return Caller(user_id=int(user.pk), api_key_id=api_key_id_of(user), agent=agent)


class UsageHooks(RunHooks):
    """Notes every model round of a run and writes its record once the round's message is
    complete, or when the run ends for a round that left no message."""

    def __init__(self, *, caller: Caller, session_id: str | None = None) -> None:
        self.caller = caller
        self.usage_session_id = session_id
        self.calls: list[ModelCallRecord] = []

    def on_model_call(self, call: ModelCall) -> None:
        u = call.usage
        self.calls.append(model_call(
            kind=Kind.CHAT, model_id=call.model_id, prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens,
            total_tokens=u.total_tokens, duration_ms=call.duration_ms, outcome=call.outcome,
        ))

    def usage_pending(self) -> list[ModelCallRecord]:
        """The calls noted and not yet written, handed over once. Taken on the event loop (where
        ``on_model_call`` appends), never in the ORM's threads, so two writes cannot share one."""
        calls, self.calls = self.calls, []
        return calls

    def usage_write(self, calls: list[ModelCallRecord]) -> None:
        """Write ``calls`` (sync: in the ORM's thread)."""
        usage_record(caller=self.caller, session_id=self.usage_session_id, calls=calls)

    async def on_message(self, message: Message) -> None:
        await self._write_pending()

    async def on_end(self) -> None:
        await self._write_pending()

    async def _write_pending(self) -> None:
        calls = self.usage_pending()
        if not calls:
            return
        if pooled.get():  # served on the hot path: the answer does not wait for its INSERT
            usage_record_behind(caller=self.caller, session_id=self.usage_session_id, calls=calls)
        else:
            await db_async(self.usage_write)(calls)


async def ametered(
    call: Callable[[], Awaitable[tuple[T, Usage]]], *, kind: str, model_id: str, into: list[ModelCallRecord]
) -> tuple[T, Usage]:
    """Make one model call outside a run (a summary, a memory extraction), noting its record in
    ``into`` however it ends; the caller writes it (``usage_record``) from where it may."""
    started, outcome, usage = time.monotonic(), Outcome.ERROR, Usage()
    try:
        answer, usage = await call()
        outcome = Outcome.OK
        return answer, usage
    except asyncio.CancelledError:
        outcome = Outcome.CANCELLED
        raise
    finally:
        into.append(model_call(
            kind=kind, model_id=model_id, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens, duration_ms=(time.monotonic() - started) * 1000, outcome=outcome,
        ))
