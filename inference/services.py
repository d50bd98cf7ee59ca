"""The server's Runtime and the request shapes it is fed from (sync: they read the database)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.core.signals import setting_changed
from django.dispatch import receiver

from inference.engine import (
    AgentExecutor,
    InferenceRequest,
    Limits,
    Message,
    Runtime,
    ToolConfig,
    ToolContext,
    ToolResult,
    ToolSettings,
    default_executors,
)
from registry import cache as registry_cache
from registry import live_settings
from sessions.services import session_dir

from .serializers import default_tool_rounds
from .sources import DbModels, DbTemplates, DbTools

T = TypeVar("T")


def scratch_dir_for(session_id: str | None, owner: str | None = None) -> str:
    """A session's scratch folder lives (and is deleted) with the session's own folder; a call
    without a session works in its caller's own folder (``owner``: see ``scratch_owner``)."""
    if session_id:
        return str(session_dir(session_id) / "scratch")
    scratch = os.path.join(settings.AGENTSITE["DATA_DIR"], "scratch")  # per request: os.path, not pathlib
    return os.path.join(scratch, "users", owner) if owner else os.path.join(scratch, "stateless")


def scratch_owner(user: Any) -> str:
    """The key of ``user``'s stateless scratch folder (``<DATA_DIR>/scratch/users/<id>``)."""
    return str(int(user.pk))  # an integer: never a path separator or ``..``


def _bash_hidden_paths() -> tuple[str, ...]:
    """The server's own files, masked in the bash sandbox should a system folder hold them."""
    paths = [str(settings.AGENTSITE["DATA_DIR"]), str(settings.BASE_DIR)]
    for db in settings.DATABASES.values():
        if str(db.get("ENGINE", "")).endswith("sqlite3"):
            paths += [str(name) for name in (db.get("NAME"), (db.get("TEST") or {}).get("NAME")) if name and name != ":memory:"]
    return tuple(dict.fromkeys(paths))


def get_runtime(conf: Mapping[str, Any] | None = None) -> Runtime:
    """The runtime for the settings ``conf`` (``registry.live_settings.current()``, the default:
    sync, it reads the registry snapshot). One is built per set of live values and kept while
    they hold; a run keeps the one it began with.

    Its own sources belong to nobody and find no model or tool: a run resolves them through
    ``runtime_for(user)``, so a path that forgets the caller fails closed."""
    conf = live_settings.current() if conf is None else conf
    return _runtime(tuple((name, conf[name]) for name in live_settings.LIVE))


@lru_cache(maxsize=1)
def _runtime(live: tuple[tuple[str, Any], ...]) -> Runtime:
    conf = {**settings.AGENTSITE, **dict(live)}
    limits = Limits(
        max_image_bytes=conf["MAX_IMAGE_BYTES"],
        max_audio_bytes=conf["MAX_AUDIO_BYTES"],
        tool_timeout_s=conf["TOOL_TIMEOUT_S"],
        max_tool_rounds_limit=conf["MAX_TOOL_ROUNDS_LIMIT"],
        tool_result_max_chars=conf["TOOL_RESULT_MAX_CHARS"],
    )
    tool_settings = ToolSettings(
        bash_enabled=conf["BASH_ENABLED"],
        bash_unsandboxed=conf["BASH_UNSANDBOXED"],
        bash_network=conf["BASH_NETWORK"],
        bash_timeout_s=conf["BASH_TIMEOUT_S"],
        bash_output_cap=conf["BASH_OUTPUT_CAP"],
        bash_cpu_s=conf["BASH_CPU_S"],
        bash_memory_mb=conf["BASH_MEMORY_MB"],
        bash_max_procs=conf["BASH_MAX_PROCS"],
        bash_file_mb=conf["BASH_FILE_MB"],
        bash_hidden_paths=_bash_hidden_paths(),
        fetch_allow_hosts=tuple(conf["FETCH_ALLOW_HOSTS"]),
        fetch_max_bytes=conf["FETCH_MAX_BYTES"],
        fetch_timeout_s=conf["FETCH_TIMEOUT_S"],
    )
    return Runtime(
        DbModels(None), DbTools(None), DbTemplates(), limits=limits, tool_settings=tool_settings, scratch_dir_for=scratch_dir_for,
        checkpoint_s=conf["RUN_CHECKPOINT_S"], executors={**default_executors(), "agent": AgentExecutor(_agent_subrun)},
    )


async def _agent_subrun(tool: ToolConfig, task: str, ctx: ToolContext) -> ToolResult:
    from .agent_runs import agent_subrun  # imports the run lifecycle, which imports this module

    return await agent_subrun(tool, task, ctx)


def runtime_for(user: Any, conf: Mapping[str, Any] | None = None) -> Runtime:
    """The shared runtime (for ``conf``, as ``get_runtime``) resolving models and tools as ``user``
    may see them (registry/access.py): the one place a run's access is decided, for preparation
    and a skill's ``allowed-tools`` alike (sync)."""
    return get_runtime(conf).scoped(models=DbModels(user), tools=DbTools(user), caller=user)


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "AGENTSITE":
        _runtime.cache_clear()


def inference_request(*, data: Mapping[str, Any], limits: Limits, session_id: str | None = None) -> InferenceRequest:
    """A validated ``/v1/infer`` body as the engine's request; ``text`` is one more user message.
    ``limits``: the run's (``max_tool_rounds``' default stays within them)."""
    messages = [Message.from_dict(m) for m in data.get("messages") or ()]
    if "text" in data:
        messages.append(Message(role="user", content=data["text"]))
    return InferenceRequest(
        model_id=data["model_id"],
        messages=tuple(messages),
        tool_ids=tuple(data.get("tool_ids") or ()),
        max_tool_rounds=data.get("max_tool_rounds", default_tool_rounds(limits.max_tool_rounds_limit)),
        options=data.get("options") or {},
        think=data.get("think"),
        session_id=session_id,
        # Set by the server, never from a request body (the strict serializers refuse these keys):
        # an agent's system prompt (inference.agent_requests) and /openai/v1's client tools.
        preamble=tuple(Message.from_dict(m) for m in data.get("agent_system") or ()),
        client_tools=tuple(data.get("client_tools") or ()),
    )


def tool_for_call(*, data: Mapping[str, Any], user: Any) -> ToolConfig:
    """The tool a direct call names, as ``user`` may see it: ``tool_id``, or MCP ``server`` + ``tool``."""
    tools = DbTools(user)
    if "tool_id" in data:
        return tools.get_many([data["tool_id"]])[0]
    return tools.on_server(data["server"], data["tool"])


def from_snapshot(fn: Callable[[], T]) -> T | None:
    """``fn()`` called here, on the event loop, when the warm registry snapshot answers all it
    reads (saving the hop to the ORM's thread); None when it cannot. Django refuses a query on
    the loop before making it, so ``fn`` must do nothing else with a lasting effect before its
    reads (the caller then runs it in the ORM's thread)."""
    if registry_cache.current() is None:
        return None
    try:
        return fn()
    except SynchronousOnlyOperation:
        return None
