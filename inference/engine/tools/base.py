"""The tool executor contract: one executor per tool type, looked up by ``tool_type``.

Adding a tool type is one executor class plus one line in ``inference.engine.executors``; the
tool loop and ``/v1/tools/call`` never special-case a type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..types import Message, ToolConfig, ToolResult


@dataclass(frozen=True, slots=True)
class ToolSettings:
    """The limits of the built-in tools (the server fills them from its settings).

    ``bash`` fails closed: it runs inside bubblewrap, or not at all, unless ``bash_unsandboxed``
    says to run commands directly on the host (docs/security.md). A limit of 0 means none.
    """

    bash_enabled: bool = False
    bash_unsandboxed: bool = False  # run without bubblewrap (never used then), on purpose
    bash_network: bool = False  # keep the host's network inside the sandbox
    bash_timeout_s: float = 30.0  # wall clock, per call
    bash_output_cap: int = 16 * 1024  # bytes per stream (stdout, stderr)
    bash_cpu_s: int = 60  # CPU seconds per process (RLIMIT_CPU)
    bash_memory_mb: int = 2048  # address space per process (RLIMIT_AS)
    bash_max_procs: int = 128  # processes in the sandbox (RLIMIT_NPROC; not for root, not unsandboxed)
    bash_file_mb: int = 256  # largest file a command may write (RLIMIT_FSIZE)
    # Host paths masked inside the sandbox even if they lie under a system folder it shows
    # (the server passes its data dir, project folder and database file).
    bash_hidden_paths: tuple[str, ...] = ()
    fetch_allow_hosts: tuple[str, ...] = ()
    fetch_max_bytes: int = 2 * 1024 * 1024
    fetch_timeout_s: float = 20.0


@dataclass(frozen=True, slots=True)
class Sampled:
    """The run's model's answer to a tool that asked it (MCP sampling)."""

    text: str
    model_id: str
    finish_reason: str  # as a round's: "stop", "length", ...


# (messages, max_tokens or None, options such as temperature and stop) -> the answer
Sampler = Callable[[Sequence[Message], int | None, Mapping[str, Any]], Awaitable[Sampled]]


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may know about the run that called it."""

    session_id: str | None = None
    scratch_dir: str | None = None  # per-session (or, stateless, per-caller) working folder (bash)
    settings: ToolSettings = field(default_factory=ToolSettings)
    # Who runs the run, opaque to the engine (the server's user): a sub-run acts for them.
    caller: Any = None
    depth: int = 0  # 0 for a run a client started, n for a sub-run n agents deep
    # Set per call by the tool loop: reports progress of a long call as ``tool_progress`` events.
    progress: Callable[[Mapping[str, Any]], None] | None = None
    # Set by the tool loop: asks the run's model once, without tools, counted as the run's own
    # model call. None outside a run (a direct call has no model).
    sample: Sampler | None = None


class ToolExecutor(ABC):
    """Runs one kind of tool.

    ``execute`` receives arguments already validated against ``tool.parameters`` and returns a
    ``ToolResult`` whose ``content`` uses MCP content item shapes. A failure the model should
    see (bad input, remote error) is returned as ``is_error=True``; raising ``ToolError`` does
    the same through the caller. Durations are measured by the caller.
    """

    @abstractmethod
    async def execute(self, tool: ToolConfig, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult: ...


Executors = Mapping[str, ToolExecutor]


def executor_kind(tool: ToolConfig) -> str:
    """Function tools split by how they run: in-process (``fn``/``callable``) or ``endpoint``;
    built-ins are keyed by their fixed tool_id."""
    kind = tool.tool_type
    if kind == "function" and tool.endpoint and not (tool.fn or tool.callable):
        return "endpoint"
    if kind == "builtin":
        return f"builtin:{tool.tool_id}"
    return kind
