"""Keeping long sessions inside the model's context window: rolling summary and memory.

Stored messages are never deleted: folding only moves the session's ``summarized_upto`` forward,
so the model gets "summary + recent turns" while ``GET /v1/sessions/{id}`` still has everything.
The session itself is read and written through the sessions app's storage interface.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace

from django.db import connections

from core.db import db_async
from inference.engine import DomainError, Message, ModelConfig, PreparedRun, Usage, get_adapter, run_sync
from sessions import selectors as session_selectors
from sessions import services as session_store

from .metering import Caller, Kind, ModelCallRecord, ametered, usage_record

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 3.5  # conservative for English prose and code, used until the server reports usage
MEMORY_MAX_FACT_CHARS = 300

# Why this wording: the summary replaces the turns it covers for good, so it must keep what
# later turns depend on (names, numbers, decisions, open tasks, tool outcomes) and drop
# pleasantries; it is written in the third person so the model never mistakes it for
# something the user just said; and it must fold in the previous summary rather than
# summarise only the new turns, or facts from the first fold would be lost on the second.
SUMMARY_PROMPT = (
    "You maintain the running summary of a conversation between a user and an AI assistant. "
    "Rewrite the summary so that it also covers the new turns below. Keep every fact later turns "
    "may rely on: names, numbers, decisions, preferences, open questions and tasks, and what tools "
    "returned. Drop greetings and filler. Write in the third person ('The user asked…'), at most "
    "300 words, plain text, no preamble."
)

# Why this wording: memory is sent with every later request, so it must hold only durable
# facts the user stated about themselves (not what the assistant or a tool said, not guesses,
# not this one task), each short and self-contained. There is deliberately no sample fact: a
# small model copied the old example ("The user's name is Ada.") into the memory of a user who
# never said it, so the format is described in words only. The conversation is fenced in tags
# so that instructions inside it read as data. Asking for a bare JSON array keeps parsing
# reliable across models that chatter; showing the known facts lets the model avoid repeats.
MEMORY_PROMPT = (
    "You keep a short list of durable facts about the user of an AI assistant. The conversation "
    "is between <conversation> and </conversation>; lines starting with 'user:' are the user's own "
    "words. Record only what the user states there about themselves: who they are, their "
    "preferences, their environment, their long-running goals. Do not record anything the "
    "assistant or a tool said, anything you infer or guess, or anything that only matters for "
    "this one request, and do not repeat a known fact. Answer with a JSON array of strings and "
    "nothing else, one short sentence about the user per string. When the user stated nothing new "
    "about themselves, answer with an empty JSON array."
)
# Words a fact may begin with that are not names (a capitalised first word is checked otherwise).
_FACT_STARTERS = frozenset(
    "the user user's users their they he she his her i my name prefers likes loves dislikes lives works "
    "uses is has wants speaks writes runs codes plans".split()
)


def message_chars(messages: Sequence[Message]) -> int:
    total = 0
    for m in messages:
        total += len(m.text()) + len(m.thinking) + 16
        total += sum(len(json.dumps(dict(c.arguments))) + len(c.name) for c in m.tool_calls)
        total += 1000 * (len(m.images) + len(m.audio))  # media cost tokens too; a rough flat charge
    return total


def estimate_tokens(messages: Sequence[Message], tokens_per_char: float | None) -> int:
    ratio = tokens_per_char or 1 / CHARS_PER_TOKEN
    return math.ceil(message_chars(messages) * ratio)


def budget_for(model: ModelConfig) -> int | None:
    """Tokens the history may use: the window minus room for the answer and tool specs."""
    if not model.context_window:
        return None
    return model.context_window - max(256, model.context_window // 4)


def _turn_starts(messages: Sequence[Message]) -> list[int]:
    # A turn starts at a user message, so an assistant's tool calls and their results always
    # stay together on one side of a cut.
    return [i for i, m in enumerate(messages) if m.role == "user"]


def history_messages(*, session_id: str, before_seq: int | None = None) -> tuple[Message, ...]:
    """Summary + memory as one system note, then the turns not yet folded into the summary."""
    history = session_store.session_history(session_id=session_id, before_seq=before_seq)
    messages = [Message.from_dict(r) for r in history.records]
    note = []
    if history.summary:
        note.append(f"Summary of the earlier conversation:\n{history.summary}")
    if history.memory:
        note.append("Facts about the user from earlier turns:\n" + "\n".join(f"- {m}" for m in history.memory))
    if note:
        messages.insert(0, Message(role="system", content="\n\n".join(note)))
    return tuple(messages)


def _transcript(messages: Sequence[Message]) -> str:
    lines = []
    for m in messages:
        if m.role == "tool":
            lines.append(f"[tool {m.tool_id or m.tool_name} returned{' an error' if m.is_error else ''}]: {m.text()[:2000]}")
        elif m.tool_calls:
            calls = ", ".join(f"{c.tool_id or c.name}({json.dumps(dict(c.arguments))[:300]})" for c in m.tool_calls)
            lines.append(f"{m.role}: {m.text()} [called {calls}]")
        else:
            lines.append(f"{m.role}: {m.text()}")
    return "\n".join(lines)


async def _ask(model: ModelConfig, system: str, user: str) -> tuple[str, Usage]:
    result = await get_adapter(model).complete(
        [Message(role="system", content=system), Message(role="user", content=user)], options={}
    )
    return result.content.strip(), result.usage


def _count_usage(session_id: str, usage: Usage) -> None:
    """A summary or memory call is model work for the session: it counts in its usage totals."""
    if usage.total_tokens or usage.prompt_tokens or usage.completion_tokens:
        session_store.usage_add(session_id=session_id, prompt_tokens=usage.prompt_tokens,
                                completion_tokens=usage.completion_tokens, total_tokens=usage.total_tokens)


async def afit_history(prepared: PreparedRun, *, session_id: str, caller: Caller | None = None) -> PreparedRun:
    """Fold the oldest turns into the summary until the run fits the model's window (the
    summary call is counted against ``caller``, whose run needed it; None: not metered)."""
    budget = budget_for(prepared.model)
    if budget is None:
        return prepared
    session = await db_async(session_selectors.session_state)(session_id=session_id)
    if estimate_tokens(prepared.messages, session.tokens_per_char) <= budget:
        return prepared
    first_new = session.message_count - len(prepared.input_messages)
    fold = await db_async(_plan_fold)(session_id, first_new, session.tokens_per_char, prepared, budget)
    if fold is None:
        return prepared
    upto, folded = fold
    existing = f"Current summary:\n{session.summary}\n\n" if session.summary else ""
    request = f"{existing}New turns:\n{_transcript(folded)}"
    records: list[ModelCallRecord] = []
    try:
        summary, usage = await ametered(
            lambda: _ask(prepared.model, SUMMARY_PROMPT, request), kind=Kind.SUMMARY, model_id=prepared.model.model_id,
            into=records,
        )
    finally:
        if caller is not None:
            await db_async(usage_record)(caller=caller, session_id=session_id, calls=records)
    await db_async(_count_usage)(session_id, usage)
    await db_async(session_store.summary_set)(session_id=session_id, summary=summary, upto=upto)
    # The same assembly as at the start of every run.
    history = await db_async(history_messages)(session_id=session_id, before_seq=first_new)
    return replace(prepared, messages=history + prepared.input_messages)


def _plan_fold(
    session_id: str, first_new: int, tokens_per_char: float | None, prepared: PreparedRun, budget: int
) -> tuple[int, list[Message]] | None:
    """(new summarized_upto, messages to fold) — the fewest oldest turns that make it fit."""
    rows = session_store.session_unfolded(session_id=session_id, before_seq=first_new)
    messages = [Message.from_dict(record) for _, record in rows]
    starts = _turn_starts(messages)
    if len(starts) < 2:
        return None  # only one turn of history: nothing can be folded without losing the current one
    new_tokens = estimate_tokens(prepared.input_messages, tokens_per_char) + 200  # + the summary note
    for cut in starts[1:]:
        if estimate_tokens(messages[cut:], tokens_per_char) + new_tokens <= budget:
            break
    else:
        cut = starts[-1]  # keep at least the latest turn verbatim
    return rows[cut][0], messages[:cut]


# ---- memory ------------------------------------------------------------------------------------

_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="memory")
_pending: set[Future[None]] = set()


def _parse_facts(text: str) -> list[str]:
    match = re.search(r"\[.*\]", text, re.S)
    if not match:
        return []
    try:
        data = json.loads(match.group(0))
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    return [f.strip()[:MEMORY_MAX_FACT_CHARS] for f in data if isinstance(f, str) and f.strip()]


def user_stated(fact: str, user_text: str) -> bool:
    """Whether the names and numbers in ``fact`` occur in what the user wrote.

    A guard behind the prompt: a small model may still invent a fact or copy one from
    elsewhere; a fact naming someone, something or a number the user never wrote is dropped.
    """
    said = user_text.casefold()
    words = re.findall(r"[^\W\d_][\w'’-]*|\d[\d.,:/-]*\d|\d", fact)
    for i, word in enumerate(words):
        word = re.sub(r"['’]s$", "", word)
        specific = word[0].isdigit() or (word[0].isupper() and (i > 0 or word.casefold() not in _FACT_STARTERS))
        if specific and word.casefold() not in said:
            return False
    return True


def memory_facts(answer: str, turn: Sequence[Message]) -> list[str]:
    """The facts of a memory-extraction answer that the user stated in ``turn``."""
    user_text = "\n".join(m.text() for m in turn if m.role == "user")
    return [f for f in _parse_facts(answer) if user_stated(f, user_text)]


def _extract(model: ModelConfig, session_id: str, turn: list[Message], known: list[str], caller: Caller | None) -> None:
    known_text = "\n".join(f"- {f}" for f in known) or "(none)"
    request = f"Known facts:\n{known_text}\n\n<conversation>\n{_transcript(turn)}\n</conversation>"
    records: list[ModelCallRecord] = []
    try:
        try:
            answer, usage = run_sync(ametered(
                lambda: _ask(model, MEMORY_PROMPT, request), kind=Kind.MEMORY, model_id=model.model_id, into=records
            ))
        except DomainError as exc:
            log.info("memory extraction for %s skipped: %s", session_id, exc.message)
            return
        finally:
            if caller is not None:
                usage_record(caller=caller, session_id=session_id, calls=records)
        _count_usage(session_id, usage)
        facts = memory_facts(answer, turn)
        if facts:
            session_store.memory_merge(session_id=session_id, facts=facts)
    finally:
        connections.close_all()  # this pool thread's connection must not outlive the job


def memory_extract_later(
    *, model: ModelConfig, session_id: str, turn: list[Message], known: list[str], caller: Caller | None = None
) -> None:
    """Off the request's critical path: a worker thread with its own event loop, so the
    extraction outlives the request (and its event loop) that triggered it. Its model call
    counts against ``caller``, whose session caused it."""
    future = _executor.submit(_extract, model, session_id, turn, known, caller)
    _pending.add(future)
    future.add_done_callback(_pending.discard)


def memory_extractions_wait(timeout: float) -> bool:
    """Wait until no extraction is queued or running (a worker shutting down, a test's end);
    False if some are still going after ``timeout`` seconds."""
    return not wait(list(_pending), timeout=timeout).not_done
