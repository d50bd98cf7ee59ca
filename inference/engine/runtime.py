"""The Runtime: any model, any tools, composed per request; the tool loop and its events.

``Runtime.prepare`` is the one place a run is resolved and validated, for SDK users and for
the server alike (the server builds its Runtime with database-backed sources). ``astream()`` is
the one implementation of a run. The loop runs as a producer task that puts ``StreamEvent``s
in an outbox (outbox.py); the consumer (an SSE view, ``ainfer()``, or an SDK user) reads them.
This split gives three things cheaply: keep-alive pings while the outbox is idle, cancellation by
``RunControl.cancel()`` from any thread (the producer is cancelled, keeps the partial answer
and still emits ``done``), and cleanup when the consumer goes away (the producer is cancelled,
the upstream request is closed, the partial answer is handed to the hooks marked incomplete).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from . import media
from .content import content_images
from .disclosure import skill_extra_tools
from .errors import DomainError, InvalidRequest, UnsupportedInput, ValidationFailed
from .executors import default_executors
from .outbox import Outbox
from .protocols import adapter_class, get_adapter, option_problems_for
from .protocols.base import RoundResult
from .registries import ModelRegistry, ModelSource, TemplateRegistry, TemplateSource, ToolRegistry, ToolSource
from .repetition import STOP_NOTE, RepetitionGuard, loop_cut
from .sync import iterate_sync, run_sync
from .templates import render_template
from .textcalls import TextCallParser, replay
from .tool_results import for_model
from .tools.base import Executors, Sampled, ToolContext, ToolSettings
from .tools.execute import check_arguments, execute_tool
from .types import (
    ContentItem,
    Finish,
    FinishReason,
    InferenceRequest,
    InferenceResult,
    Message,
    ModelConfig,
    ReasoningDelta,
    StreamEvent,
    StreamEventName,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolConfig,
    ToolResult,
    Usage,
    UsageDelta,
)

log = logging.getLogger(__name__)

IMAGES_NOT_SUPPORTED = "Model {model!r} does not accept images (supports_vision is off)."
AUDIO_NOT_SUPPORTED = "Model {model!r} does not accept audio (supports_audio is off)."
AUDIO_NOT_ON_PROTOCOL = "Audio input is not supported by the {protocol} protocol."
UNKNOWN_TOOL_NAME = "The model called {name!r}, which is not one of the tools offered."
NO_MESSAGES = "The request has no messages."
INTERNAL_ERROR = "The run failed unexpectedly; what was produced so far is kept."

_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")


TOO_MANY_ROUNDS = "max_tool_rounds may be at most {limit}."
NEGATIVE_ROUNDS = "max_tool_rounds must be 0 or more."


@dataclass(frozen=True, slots=True)
class Limits:
    max_image_bytes: int = 10 * 1024 * 1024
    max_audio_bytes: int = 20 * 1024 * 1024
    tool_timeout_s: float = 60.0
    max_tool_rounds_limit: int = 50
    # The loop guard: a round whose text has repeated one unit for this many characters is
    # stopped (finish_reason "length"); 0 turns the guard off.
    repeat_stop_chars: int = 2000
    # How much of a tool's result goes to the model (characters of text; 0: all), tool_results.py.
    tool_result_max_chars: int = 100_000


@dataclass(frozen=True)
class PreparedRun:
    """Everything a run needs, resolved up front (the Django side builds it from the DB).

    ``messages`` is what goes to the model (history, summary and memory included);
    ``input_messages`` is this request's own input, echoed at the start of the result.
    ``tool_lookup`` maps lower-cased tool names and ids to registered tools, so the tools a
    skill's ``allowed-tools`` names can be offered once the skill is activated.
    """

    model: ModelConfig
    messages: tuple[Message, ...]
    tools: tuple[ToolConfig, ...] = ()
    input_messages: tuple[Message, ...] = ()
    max_tool_rounds: int = 10
    options: Mapping[str, Any] = field(default_factory=dict)
    think: bool | str | None = None
    session_id: str | None = None
    context: ToolContext = field(default_factory=ToolContext)
    tool_lookup: Mapping[str, ToolConfig] = field(default_factory=dict)


class RunHooks:
    """Override to persist a run as it happens (the server's run lifecycle does).

    Every hook runs in the run's own task, so ``on_end`` runs whatever the consumer does
    (reads to the end, goes away, never starts reading).
    """

    async def on_start(self) -> None:
        """The run's task begins (before the first model round)."""

    async def on_checkpoint(self, message: Message) -> None:
        """The answer of the round in progress so far (``incomplete``), at most every ``checkpoint_s``."""

    async def on_end(self) -> None:
        """The run's task ends, after ``on_done``/``on_partial``, however it ended."""

    async def on_message(self, message: Message) -> None:
        """A produced message (assistant turn or tool result), once complete."""

    async def on_partial(self, message: Message, *, error: DomainError | None = None) -> None:
        """The assistant text produced before a cancel, disconnect or failure (``incomplete``)."""

    async def on_done(self, result: InferenceResult) -> None:
        """The run finished (also when cancelled); ``result.usage`` sums every round."""

    async def on_usage(self, sent: Sequence[Message], usage: Usage) -> None:
        """One model round's reported usage, with the messages that were sent for it."""

    def on_model_call(self, call: ModelCall) -> None:
        """Every model round as it ends, however it ended (for metering). Not a coroutine: it
        is also called while the run is being cancelled, so it must only take note."""


@dataclass(frozen=True)
class ModelCall:
    """One request to the model server: what it cost and how it ended."""

    model_id: str
    usage: Usage
    duration_ms: float
    outcome: str  # "ok", "error" or "cancelled"


class RunControl:
    """Lets another task or thread stop a run; the partial answer is kept (``cancelled``)."""

    def __init__(self) -> None:
        self.cancelled = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _attach(self, task: asyncio.Task[None]) -> None:
        self._task, self._loop = task, asyncio.get_running_loop()
        if self.cancelled:
            task.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        if self._task is not None and self._loop is not None and not self._task.done():
            self._loop.call_soon_threadsafe(self._task.cancel)


# ---- helpers ---------------------------------------------------------------------------------


def model_facing_names(tools: Sequence[ToolConfig], taken: set[str] | None = None) -> dict[str, ToolConfig]:
    """Names the model sees: ``^[A-Za-z0-9_-]{1,64}$``, unique within the request (docs/protocols.md C-1)."""
    out: dict[str, ToolConfig] = {}
    used = set(taken or ())
    for tool in tools:
        base = _NAME_BAD.sub("_", tool.name or tool.tool_id)[:64] or "tool"
        name, n = base, 2
        while name in used:
            suffix = f"_{n}"
            name, n = base[: 64 - len(suffix)] + suffix, n + 1
        used.add(name)
        out[name] = tool
    return out


def tool_spec(name: str, tool: ToolConfig) -> dict[str, Any]:
    return {"name": name, "description": tool.description, "parameters": dict(tool.parameters or {})}


def validate_inputs(model: ModelConfig, messages: Sequence[Message], limits: Limits, *, answer_again: bool = False) -> None:
    """Everything that can be refused before a byte goes upstream (answered as a 4xx).
    ``answer_again``: no new messages is fine, the history ends with the question (a regenerate)."""
    if not messages and not answer_again:
        raise InvalidRequest(NO_MESSAGES)
    for i, m in enumerate(messages):
        images = [*m.images, *content_images(i, m)]  # image items of a content list are images too
        if images:
            if not model.supports_vision:
                raise UnsupportedInput(IMAGES_NOT_SUPPORTED.format(model=model.model_id))
            for image in images:
                media.normalize_image(image, max_bytes=limits.max_image_bytes)
        if m.audio:
            if not adapter_class(model.api_protocol).accepts_audio:
                raise UnsupportedInput(AUDIO_NOT_ON_PROTOCOL.format(protocol=model.api_protocol))
            if not model.supports_audio:
                raise UnsupportedInput(AUDIO_NOT_SUPPORTED.format(model=model.model_id))
            for clip in m.audio:
                media.normalize_audio(clip.data, clip.format, max_bytes=limits.max_audio_bytes)


def resolve_templates(messages: Sequence[Message], templates: TemplateSource | None) -> tuple[Message, ...]:
    out = []
    for m in messages:
        if m.prompt_template is not None:
            if templates is None:
                raise InvalidRequest("prompt_template needs a template registry.")
            content = render_template(templates.get_content(m.prompt_template), m.arguments or {})
            m = replace(m, content=content)
        out.append(m)
    return tuple(out)


def _ping() -> StreamEvent:
    return StreamEvent("ping", {})


# ---- the runtime -----------------------------------------------------------------------------


def check_limits(request: InferenceRequest, limits: Limits) -> None:
    """Request-level limits; a field out of range is a ``validation_error`` naming it."""
    if request.max_tool_rounds < 0:
        raise ValidationFailed(f"max_tool_rounds: {NEGATIVE_ROUNDS}", detail={"max_tool_rounds": [NEGATIVE_ROUNDS]})
    if request.max_tool_rounds > limits.max_tool_rounds_limit:
        message = TOO_MANY_ROUNDS.format(limit=limits.max_tool_rounds_limit)
        raise ValidationFailed(f"max_tool_rounds: {message}", detail={"max_tool_rounds": [message]})


def check_options(model: ModelConfig, options: Mapping[str, Any]) -> None:
    """The merged options (the model's defaults, overridden by the request's) against the types
    the model's protocol gives its option names; a known name holding a value of the wrong type
    is a ``validation_error`` naming it. Unknown names pass through untouched."""
    problems = option_problems_for(model.api_protocol, {**model.options, **options})
    if problems:
        detail = {
            f"options.{name}": [problem if name in options else f"{problem} (the model's default)"]
            for name, problem in problems.items()
        }
        first = next(iter(detail))
        raise ValidationFailed(f"{first}: {detail[first][0]}", detail=detail)


class ScratchDirFor(Protocol):
    """Where a run's ``bash`` works: one folder per session, and for stateless runs one per
    ``owner`` (an opaque key for the caller, such as a user id), so callers never share one."""

    def __call__(self, session_id: str | None, owner: str | None = None) -> str: ...


def default_scratch_dir(session_id: str | None, owner: str | None = None) -> str:
    """SDK default: per session, else per owner, under the system's temporary directory."""
    base = os.path.join(tempfile.gettempdir(), "agentsite-scratch")
    if session_id:
        return os.path.join(base, session_id)
    return os.path.join(base, "users", owner) if owner else os.path.join(base, "stateless")


class Runtime:
    """Any model with any tools. SDK users give in-memory registries; the server gives
    database-backed sources; both run through the same ``prepare`` and tool loop."""

    def __init__(
        self,
        model_registry: ModelSource | None = None,
        tool_registry: ToolSource | None = None,
        template_registry: TemplateSource | None = None,
        *,
        limits: Limits | None = None,
        tool_settings: ToolSettings | None = None,
        scratch_dir_for: ScratchDirFor = default_scratch_dir,
        executors: Executors | None = None,
        checkpoint_s: float = 2.0,
    ) -> None:
        self.models = model_registry or ModelRegistry()
        self.tools = tool_registry or ToolRegistry()
        self.templates = template_registry or TemplateRegistry()
        self.limits = limits or Limits()
        self.tool_settings = tool_settings or ToolSettings()
        self.scratch_dir_for = scratch_dir_for
        self.executors: Executors = executors if executors is not None else default_executors()
        # How often a streaming round hands its answer so far to ``RunHooks.on_checkpoint``.
        self.checkpoint_s = checkpoint_s
        # Who this runtime's runs act for (opaque; set by ``scoped``): handed to tools in their
        # context, so an agent tool's sub-run acts for the same caller.
        self.caller: Any = None

    def scoped(self, *, models: ModelSource, tools: ToolSource, caller: Any = None) -> Runtime:
        """This runtime resolving models and tools through other sources, sharing everything
        else (the server narrows the registries to one caller's view this way)."""
        clone = copy.copy(self)
        clone.models, clone.tools, clone.caller = models, tools, caller
        return clone

    # -- preparing ---------------------------------------------------------------------------

    def prepare(self, request: InferenceRequest, *, history: Sequence[Message] = (), owner: str | None = None) -> PreparedRun:
        """Resolve model, tools and templates, and refuse what the run can't take (4xx errors).

        ``history`` (a session's earlier turns, summary and memory) goes to the model before
        the request's own messages; only the request's messages are validated and echoed.
        ``owner`` keys the scratch folder of a run without a session (see ``ScratchDirFor``).
        """
        check_limits(request, self.limits)
        model = self.models.get(request.model_id)
        check_options(model, request.options)
        # Client tools first: they keep the names the caller gave them (ours yield on a clash).
        tools = tuple(request.client_tools) + tuple(self.tools.get_many(request.tool_ids))
        messages = resolve_templates(request.messages, self.templates)
        validate_inputs(model, messages, self.limits, answer_again=bool(history) and history[-1].role == "user")
        preamble = resolve_templates(request.preamble, self.templates)
        return PreparedRun(
            model=model,
            messages=preamble + tuple(history) + messages,
            tools=tools,
            input_messages=messages,
            max_tool_rounds=request.max_tool_rounds,
            options=request.options,
            think=request.think,
            session_id=request.session_id,
            context=self.tool_context(request.session_id, owner=owner),
            tool_lookup=self._tool_lookup(tools),
        )

    def tool_context(self, session_id: str | None = None, *, owner: str | None = None) -> ToolContext:
        scratch = self.scratch_dir_for(session_id, owner)
        return ToolContext(session_id=session_id, scratch_dir=scratch, settings=self.tool_settings, caller=self.caller)

    def _tool_lookup(self, tools: Sequence[ToolConfig]) -> dict[str, ToolConfig]:
        """Registered tools by lower-cased name and id, for the tools a skill may bring."""
        lookup: dict[str, ToolConfig] = {}
        if any(t.tool_type == "skill" for t in tools):
            for t in self.tools.all():
                lookup.setdefault(t.name.lower(), t)
                lookup.setdefault(t.tool_id.lower(), t)
        return lookup

    def _prepared(self, run: InferenceRequest | PreparedRun) -> PreparedRun:
        return run if isinstance(run, PreparedRun) else self.prepare(run)

    # -- running -----------------------------------------------------------------------------

    async def ainfer(
        self, run: InferenceRequest | PreparedRun, *, hooks: RunHooks | None = None, control: RunControl | None = None
    ) -> InferenceResult:
        """Run to the end without streaming upstream; raise the run's error if it failed."""
        done: Mapping[str, Any] | None = None
        error: BaseException | None = None
        async for event in self.astream(run, hooks=hooks, control=control, stream_upstream=False):
            if event.event == "error":
                error = event.data["exception"]  # raised once the run has ended (hooks included)
            if event.event == "done":
                done = event.data
        if error is not None:
            raise error
        assert done is not None
        result: InferenceResult = done["result"]
        return result

    async def astream(
        self,
        run: InferenceRequest | PreparedRun,
        *,
        hooks: RunHooks | None = None,
        control: RunControl | None = None,
        ping_s: float | None = None,
        stream_upstream: bool = True,
    ) -> AsyncIterator[StreamEvent]:
        """Events as docs/api.md's SSE table (plus ``ping`` when ``ping_s`` is set).

        ``done`` carries ``{"result": InferenceResult, **result.to_dict()}``; ``error`` carries
        ``{"exception": DomainError, **error envelope}``.
        """
        stream = self.start(run, hooks=hooks, control=control, stream_upstream=stream_upstream)
        try:
            async for event in stream.events(ping_s=ping_s):
                yield event
        finally:
            await stream.aclose()

    def start(
        self,
        run: InferenceRequest | PreparedRun,
        *,
        hooks: RunHooks | None = None,
        control: RunControl | None = None,
        stream_upstream: bool = True,
    ) -> RunStream:
        """Start the run now, in its own task (call inside the event loop that should run it).

        The run goes on, and its hooks run to the end, even if its events are never read;
        ``RunStream.aclose()`` (the consumer leaving) cancels it and keeps the partial answer.
        """
        prepared = self._prepared(run)
        events: Outbox[StreamEvent | None] = Outbox()
        loop = _Loop(self, prepared, hooks or RunHooks(), control or RunControl(), events, stream_upstream)
        task = asyncio.create_task(loop.run())
        loop.control._attach(task)
        return RunStream(loop, task, events)

    # -- sync twins for SDK users --------------------------------------------------------------

    def infer(self, request: InferenceRequest | PreparedRun) -> InferenceResult:
        return run_sync(self.ainfer(request))

    def infer_stream(self, request: InferenceRequest | PreparedRun) -> Iterator[StreamEvent]:
        """Events as they come, from a private event loop in a helper thread."""
        return iterate_sync(lambda: self.astream(request))

    # -- direct tool calls -------------------------------------------------------------------

    async def acall_tool(
        self, tool: str | ToolConfig, arguments: Mapping[str, Any], *, context: ToolContext | None = None
    ) -> ToolResult:
        """Call a tool without a model. Bad arguments raise InvalidArguments (400)."""
        config = tool if isinstance(tool, ToolConfig) else self.tools.get_many([tool])[0]
        check_arguments(config, arguments)
        return await self.execute(config, arguments, context or self.tool_context(), validate=False)

    def call_tool(self, tool: str | ToolConfig, arguments: Mapping[str, Any]) -> ToolResult:
        return run_sync(self.acall_tool(tool, arguments))

    async def execute(
        self, tool: ToolConfig, arguments: Mapping[str, Any], context: ToolContext, *, validate: bool = True
    ) -> ToolResult:
        """One tool call with its timeout; a tool's own failure is an ``is_error`` result."""
        timeout = tool.timeout_s or self.limits.tool_timeout_s
        return await execute_tool(tool, arguments, context, executors=self.executors, timeout_s=timeout, validate=validate)


class RunStream:
    """A started run: its events as they come, and ``aclose()`` for a consumer that leaves."""

    def __init__(self, loop: _Loop, task: asyncio.Task[None], events: Outbox[StreamEvent | None]) -> None:
        self._loop, self._task, self._events = loop, task, events

    async def events(self, *, ping_s: float | None = None) -> AsyncIterator[StreamEvent]:
        """The run's events for its one consumer (``ping`` after ``ping_s`` without one)."""
        try:
            while True:
                event = await self._events.get(ping_s)
                if event is None:
                    return
                yield event if isinstance(event, StreamEvent) else _ping()  # else it is PING
        finally:
            self._events.close()

    async def aclose(self) -> None:
        self._events.close()  # the consumer's events() may be left suspended, its finally not run yet
        if not self._task.done() and not self._loop.finishing:
            self._loop.consumer_gone = True
            self._task.cancel()
        # Let the producer store the partial answer, close the upstream request and end.
        await asyncio.gather(self._task, return_exceptions=True)


class _Loop:
    """One run of the tool loop, as a producer of StreamEvents."""

    def __init__(
        self,
        runtime: Runtime,
        run: PreparedRun,
        hooks: RunHooks,
        control: RunControl,
        events: Outbox[StreamEvent | None],
        stream_upstream: bool,
    ) -> None:
        self.runtime = runtime
        self.run_ = run
        self.hooks = hooks
        self.control = control
        self.events = events
        self.stream_upstream = stream_upstream
        self.consumer_gone = False
        self.finishing = False
        self.last: StreamEvent | None = None  # done or error, sent once the run has ended
        self.adapter = get_adapter(run.model)
        self.options = {**run.model.options, **run.options}
        self.history: list[Message] = list(run.messages)
        self.produced: list[Message] = []
        self.usage = Usage()
        self.rounds = 0
        # the text of the round in progress, for keeping a partial answer
        self.partial_text: list[str] = []
        self.partial_thinking: list[str] = []
        self.final_text: list[str] = []
        self.final_thinking: list[str] = []
        self.offered: dict[str, ToolConfig] = model_facing_names(run.tools)
        self.activated_skills: set[str] = set()

    def emit(self, event: StreamEventName, data: Mapping[str, Any]) -> None:
        self.events.put_nowait(StreamEvent(event, data))

    async def run(self) -> None:
        try:
            await self.hooks.on_start()
            if self.run_.session_id:
                self.emit("session", {"session_id": self.run_.session_id})
            finish = await self._loop()
            await self._done(finish)
        except asyncio.CancelledError:
            await self._keep_partial(None)
            if self.consumer_gone or not self.control.cancelled:
                raise
            await self._done("cancelled")
        except DomainError as exc:
            await self._keep_partial(exc)
            self.last = StreamEvent("error", {"exception": exc, **exc.to_dict()})
        except Exception:  # a bug or a broken store: the stream must still end with an error
            log.exception("run failed unexpectedly")
            error = DomainError(INTERNAL_ERROR, code="internal_error", status=500)
            await self._keep_partial(error)
            self.last = StreamEvent("error", {"exception": error, **error.to_dict()})
        finally:
            self.finishing = True  # from here on a leaving consumer waits instead of cancelling
            try:
                await asyncio.shield(self.hooks.on_end())
            except (asyncio.CancelledError, Exception):
                log.exception("a run's end hook failed")
            # The closing event comes after the end hook: whoever sees ``done`` finds the
            # session released already.
            if self.last is not None:
                self.events.put_nowait(self.last)
            self.events.put_nowait(None)

    async def _done(self, finish: FinishReason) -> None:
        content, thinking = "".join(self.final_text), "".join(self.final_thinking)
        result = InferenceResult(
            model_id=self.run_.model.model_id,
            messages=tuple(self.run_.input_messages) + tuple(self.produced),
            content=content,
            thinking=thinking,
            finish_reason=finish,
            tool_rounds=self.rounds,
            usage=self.usage,
            session_id=self.run_.session_id,
        )
        await self.hooks.on_done(result)
        self.last = StreamEvent("done", {"result": result, **result.to_dict()})

    async def _keep_partial(self, error: DomainError | None) -> None:
        text, thinking = "".join(self.partial_text), "".join(self.partial_thinking)
        message = Message(role="assistant", content=text, thinking=thinking, incomplete=True)
        if text or thinking:
            self.produced.append(message)
            self.final_text, self.final_thinking = [text], [thinking]
        self.partial_text, self.partial_thinking = [], []
        try:
            await asyncio.shield(self.hooks.on_partial(message, error=error))
        except asyncio.CancelledError:
            pass
        except Exception:  # keeping the partial must not turn one failure into two
            log.exception("storing a partial answer failed")

    async def _loop(self) -> FinishReason:
        while True:
            with_tools = self.rounds < self.run_.max_tool_rounds
            round_ = await self._metered_round(with_tools)
            calls = round_.tool_calls if with_tools else ()
            assistant = Message(role="assistant", content=round_.content, thinking=round_.thinking, tool_calls=calls)
            self.partial_text, self.partial_thinking = [], []
            self.history.append(assistant)
            self.produced.append(assistant)
            for call in calls:  # each call as it is complete, then the message that holds them
                self.emit("tool_call", call.to_dict())
            self.emit("message", assistant.to_dict())
            await self.hooks.on_message(assistant)
            if not calls:
                if not with_tools and self.rounds > 0:
                    return "max_tool_rounds"
                return "length" if round_.finish_reason == "length" else "stop"
            self.rounds += 1
            self.final_text, self.final_thinking = [], []
            handed_back = [c for c in calls if self._is_client(c)]
            await self._run_tools([c for c in calls if not self._is_client(c)])
            if handed_back:  # the caller runs these and comes back with their results
                return "tool_calls"

    def _is_client(self, call: ToolCall) -> bool:
        tool = self.offered.get(call.name)
        return tool is not None and tool.tool_type == "client"

    def _text_parser(self, specs: Sequence[Mapping[str, Any]]) -> TextCallParser | None:
        """With ``tool_call_format: "auto"`` and tools offered: the parser for calls written as text."""
        if self.run_.model.tool_call_format != "auto" or not specs:
            return None
        return TextCallParser(spec["name"] for spec in specs)

    def _show_text(self, text: str) -> None:
        if text:
            self.partial_text.append(text)
            self.final_text.append(text)
            self.emit("delta", {"content": text})

    def _show_thinking(self, text: str) -> None:
        if text:
            self.partial_thinking.append(text)
            self.final_thinking.append(text)
            self.emit("delta", {"thinking": text})

    async def _metered_round(self, with_tools: bool) -> RoundResult:
        return await self._metered(self._model_round(with_tools))

    async def _metered(self, round_: Awaitable[RoundResult]) -> RoundResult:
        """A model call, reported to ``on_model_call`` whether it answers, fails or is cancelled."""
        started, outcome, usage = time.monotonic(), "error", Usage()
        try:
            result = await round_
            outcome, usage = "ok", result.usage
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            call = ModelCall(self.run_.model.model_id, usage, (time.monotonic() - started) * 1000, outcome)
            try:
                self.hooks.on_model_call(call)
            except Exception:  # metering must never turn an answer into a failure
                log.exception("a run's model-call hook failed")

    async def _sample(self, messages: Sequence[Message], max_tokens: int | None, options: Mapping[str, Any]) -> Sampled:
        """A tool asks the run's model (MCP sampling): one answer without tools, with the model's
        own options under the tool's, metered and added to the run's usage like a round."""
        model = self.run_.model
        if max_tokens and (model.max_output_tokens is None or max_tokens < model.max_output_tokens):
            model = replace(model, max_output_tokens=max_tokens)
        adapter = get_adapter(model)
        result = await self._metered(adapter.complete(messages, (), options={**model.options, **options}))
        self.usage = self.usage + result.usage
        return Sampled(result.content, model.model_id, result.finish_reason)

    async def _model_round(self, with_tools: bool) -> RoundResult:
        specs = [tool_spec(name, t) for name, t in self.offered.items()] if with_tools else []
        # Calls the model wrote as text go back to it as text, their results in its family's form.
        messages = replay(self.history)
        parser = self._text_parser(specs)
        if not self.stream_upstream:
            result = await self.adapter.complete(messages, specs, options=self.options, think=self.run_.think)
            result = self._whole_answer(result, parser)
            result = replace(result, tool_calls=tuple(self._bind(c) for c in result.tool_calls))
            self._show_thinking(result.thinking)
            self._show_text(result.content)
            self.partial_text, self.partial_thinking = [], []
            self.usage = self.usage + result.usage
            await self.hooks.on_usage(messages, result.usage)
            return result
        content: list[str] = self.partial_text
        thinking: list[str] = self.partial_thinking
        calls: list[ToolCall] = []
        usage, reason = Usage(), "stop"
        span = self.runtime.limits.repeat_stop_chars
        text_guard, thinking_guard = RepetitionGuard(min_span=span), RepetitionGuard(min_span=span)
        looping = False
        checkpoint_at = time.monotonic() + self.runtime.checkpoint_s
        upstream = self.adapter.stream(messages, specs, options=self.options, think=self.run_.think)
        try:
            async for ev in upstream:
                if isinstance(ev, TextDelta):
                    self._show_text(parser.feed(ev.text) if parser else ev.text)
                    looping = text_guard.feed(ev.text)
                elif isinstance(ev, ReasoningDelta):
                    self._show_thinking(ev.text)
                    looping = thinking_guard.feed(ev.text)
                elif isinstance(ev, ToolCallDelta):
                    calls.append(self._bind(ev.call))
                elif isinstance(ev, UsageDelta):
                    usage = ev.usage
                elif isinstance(ev, Finish):
                    reason = ev.reason
                if looping:
                    break  # closing the stream below ends the upstream request
                if time.monotonic() >= checkpoint_at and (content or thinking):
                    draft = Message(role="assistant", content="".join(content), thinking="".join(thinking), incomplete=True)
                    await self.hooks.on_checkpoint(draft)
                    checkpoint_at = time.monotonic() + self.runtime.checkpoint_s
        finally:
            close = getattr(upstream, "aclose", None)
            if close is not None:
                await close()
        if parser is not None:
            self._show_text(parser.flush())
            calls += [self._bind(c) for c in parser.calls]
        if looping:
            log.info("stopped a looping answer of model %s", self.run_.model.model_id)
            self._show_text(STOP_NOTE)
            reason = "length"
        if calls:
            reason = "tool_calls"
        self.usage = self.usage + usage
        await self.hooks.on_usage(messages, usage)
        return RoundResult("".join(content), "".join(thinking), tuple(calls), usage, reason)

    def _whole_answer(self, result: RoundResult, parser: TextCallParser | None) -> RoundResult:
        """A non-streamed round through the same loop guard and text-call parser as a stream."""
        span = self.runtime.limits.repeat_stop_chars
        content, thinking, reason = result.content, result.thinking, result.finish_reason
        note = ""
        if span > 0:
            cut = loop_cut(thinking, min_span=span)
            if cut is not None:  # the model got out of it, if there is an answer after all
                thinking = thinking[:cut] + STOP_NOTE
                reason = reason if content else "length"
            cut = loop_cut(content, min_span=span)
            if cut is not None:
                content, note, reason = content[:cut], STOP_NOTE, "length"
        calls = result.tool_calls
        if parser is not None:
            content = parser.feed(content) + parser.flush()
            calls += tuple(parser.calls)
        if calls:
            reason = "tool_calls"
        return replace(result, content=content + note, thinking=thinking, tool_calls=calls, finish_reason=reason)

    def _bind(self, call: ToolCall) -> ToolCall:
        tool = self.offered.get(call.name)
        return replace(call, tool_id=tool.tool_id if tool else "")

    async def _run_tools(self, calls: Sequence[ToolCall]) -> None:
        vision, cap = self.run_.model.supports_vision, self.runtime.limits.tool_result_max_chars

        async def run(call: ToolCall) -> tuple[ToolResult, list[ContentItem]]:
            result = await self._run_one(call)
            content = for_model(result.content, vision=vision, max_chars=cap)
            # Announced as soon as this call ends, not when the round's slowest one does.
            self.emit(
                "tool_result",
                {"id": call.id, "tool_id": call.tool_id, "content": content, "is_error": result.is_error,
                 "duration_ms": round(result.duration_ms, 3)},
            )
            return result, content

        results = await asyncio.gather(*(run(c) for c in calls))
        # The messages keep the order of the calls.
        for call, (result, content) in zip(calls, results, strict=True):
            message = Message(
                role="tool",
                content=content,
                tool_call_id=call.id,
                tool_id=call.tool_id,
                tool_name=call.name,
                is_error=result.is_error,
                duration_ms=round(result.duration_ms, 3),
            )
            self.history.append(message)
            self.produced.append(message)
            self.emit("message", message.to_dict())
            await self.hooks.on_message(message)
            self._disclose(call, result)

    async def _run_one(self, call: ToolCall) -> ToolResult:
        tool = self.offered.get(call.name)
        if tool is None:
            return ToolResult(call.tool_id, ({"type": "text", "text": UNKNOWN_TOOL_NAME.format(name=call.name)},), True)
        if call.arguments_error:
            return ToolResult(tool.tool_id, ({"type": "text", "text": call.arguments_error},), True)
        def progress(data: Mapping[str, Any]) -> None:
            self.emit("tool_progress", {"id": call.id, "tool_id": tool.tool_id, **data})

        context = replace(self.run_.context, progress=progress, sample=self._sample)
        return await self.runtime.execute(tool, call.arguments, context)

    def _disclose(self, call: ToolCall, result: ToolResult) -> None:
        """After a skill is activated, offer the tools it brings from the next round on."""
        tool = self.offered.get(call.name)
        if tool is None or tool.tool_type != "skill" or tool.remote_name or result.is_error:
            return
        if tool.tool_id in self.activated_skills:
            return
        self.activated_skills.add(tool.tool_id)
        extra = skill_extra_tools(tool, self.run_.tool_lookup)
        known = {t.tool_id for t in self.offered.values()}
        fresh = [t for t in extra if t.tool_id not in known]
        self.offered.update(model_facing_names(fresh, taken=set(self.offered)))
