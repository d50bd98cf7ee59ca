"""The executor of every tool type, in one table that a ``Runtime`` is built with.

Adding a tool type is one ``ToolExecutor`` subclass and one line here.
"""

from __future__ import annotations

from .mcp import MCPToolExecutor
from .skills import SkillExecutor
from .tools.base import ToolExecutor
from .tools.builtins import BashExecutor, FetchExecutor
from .tools.functions import EndpointExecutor, PythonFunctionExecutor


def default_executors() -> dict[str, ToolExecutor]:
    return {
        "function": PythonFunctionExecutor(),
        "endpoint": EndpointExecutor(),
        "mcp": MCPToolExecutor(),
        "skill": SkillExecutor(),
        "builtin:bash": BashExecutor(),
        "builtin:fetch": FetchExecutor(),
    }
