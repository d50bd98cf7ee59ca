"""The agentsite engine: any model with any tools, as a plain Python library.

No Django import anywhere in this package. This module is its public API; callers (the
server's apps, SDK users, tests) import from here::

    from inference.engine import InferenceRequest, ModelConfig, Runtime, ModelRegistry

    runtime = Runtime(ModelRegistry([ModelConfig("m", "ollama", "http://localhost:11434", "qwen3")]))
    print(runtime.infer(InferenceRequest.of("m", "Hello")).content)
"""

from . import media
from .archive import extract_skill_zip
from .envvars import expand_vars, find_vars
from .errors import (
    DomainError,
    InputTooLarge,
    InvalidArguments,
    InvalidRequest,
    ModelError,
    ModelNotFound,
    ModelTimeout,
    ModelUnavailable,
    NotFound,
    TemplateNotFound,
    TemplateVariablesMissing,
    ToolError,
    ToolNotFound,
    UnsupportedInput,
    ValidationFailed,
)
from .executors import default_executors
from .mcp import MCPClientManager
from .mcp_config import mcp_tool_configs, normalize_server_config, parse_mcp_servers
from .protocols import ADAPTERS, ProtocolAdapter, get_adapter, option_problems_for, protocol_choices
from .registries import ModelRegistry, ModelSource, TemplateRegistry, TemplateSource, ToolRegistry, ToolSource
from .runtime import Limits, ModelCall, PreparedRun, RunControl, RunHooks, Runtime
from .skills import Skill, find_skill_file, parse_skill, skill_tool_config
from .sync import iterate_sync, run_sync
from .templates import render_template, template_variables
from .tools.agents import AGENT_PARAMETERS, AGENT_PREFIX, AgentExecutor, agent_tool_config
from .tools.base import ToolContext, ToolExecutor, ToolSettings
from .tools.builtins import bash_tool_config, fetch_tool_config, probe_sandbox
from .tools.functions import import_dotted, tool
from .types import (
    AudioInput,
    InferenceRequest,
    InferenceResult,
    Message,
    ModelConfig,
    StreamEvent,
    ToolCall,
    ToolConfig,
    ToolResult,
    Usage,
)

__all__ = [
    "AGENT_PARAMETERS", "AGENT_PREFIX", "AgentExecutor", "agent_tool_config",
    "Skill", "bash_tool_config", "extract_skill_zip", "fetch_tool_config", "find_skill_file", "import_dotted",
    "mcp_tool_configs", "media", "normalize_server_config", "parse_mcp_servers", "parse_skill", "skill_tool_config",
    "ADAPTERS", "AudioInput", "DomainError", "InferenceRequest", "InferenceResult", "InputTooLarge",
    "InvalidArguments", "InvalidRequest", "Limits", "MCPClientManager", "Message", "ModelConfig", "ModelError",
    "ModelNotFound", "ModelRegistry", "ModelSource", "ModelTimeout", "ModelUnavailable", "NotFound", "PreparedRun",
    "ModelCall", "ProtocolAdapter", "RunControl", "RunHooks", "Runtime", "StreamEvent", "TemplateNotFound", "TemplateRegistry",
    "TemplateSource", "TemplateVariablesMissing", "ToolCall", "ToolConfig", "ToolContext", "ToolError",
    "ToolExecutor", "ToolNotFound", "ToolRegistry", "ToolResult", "ToolSettings", "ToolSource", "Usage",
    "UnsupportedInput", "ValidationFailed", "default_executors", "expand_vars", "find_vars", "get_adapter",
    "iterate_sync", "option_problems_for", "probe_sandbox", "protocol_choices", "render_template", "run_sync",
    "template_variables", "tool",
]
