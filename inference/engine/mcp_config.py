"""MCP server configs and tool metadata, without the SDK (docs/protocols.md C.8, C-1, C-14).

The ``mcpServers`` dialects of Claude Desktop, Claude Code, Cursor, VS Code and Windsurf are
normalised into one ``ServerConfig`` at the edge; ``${VAR}`` references stay in it and are
resolved only when connecting, so an env change applies on the next connect and expanded
secrets are never stored.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from .envvars import Lookup, expand_vars, find_vars
from .errors import InvalidRequest
from .types import ToolConfig

Transport = Literal["stdio", "streamable_http", "sse"]

DEFAULT_TIMEOUT_S = 60.0  # C-4: the SDK waits forever unless told otherwise
# Starting a server (uvx/npx may download it first) and the handshake; separate from a call's timeout.
DEFAULT_CONNECT_TIMEOUT_S = 60.0

SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LLM_NAME_MAX = 64
_NOT_LLM_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")

# Transport spellings seen in the wild (C.8), compared lower-cased.
_TRANSPORTS: dict[str, Transport] = {
    "stdio": "stdio",
    "sse": "sse",
    "http": "streamable_http",
    "streamable-http": "streamable_http",
    "streamable_http": "streamable_http",
    "streamablehttp": "streamable_http",
}

ERR_SERVER_NAME = "MCP server name {name!r} must match ^[A-Za-z0-9_-]{{1,64}}$."
ERR_NOT_OBJECT = "MCP server config must be a JSON object."
ERR_NO_TARGET = "MCP server config needs a 'command' (stdio) or a 'url' (HTTP/SSE)."
ERR_BOTH_TARGETS = "MCP server config has both 'command' and 'url'; set 'type' to choose one."
ERR_TRANSPORT = "Unknown MCP transport {value!r}; use 'stdio', 'http' (streamable HTTP) or 'sse'."
ERR_NEEDS_COMMAND = "An MCP stdio server needs a 'command'."
ERR_NEEDS_URL = "An MCP {transport} server needs a 'url'."
ERR_URL = "MCP server url must be an absolute http(s) URL, got {url!r}."
ERR_FIELD_TYPE = "MCP server config field {field!r} must be {expected}."
ERR_TIMEOUT = "MCP server config field {field!r} must be a positive number of seconds."
ERR_ENV_FILE = "MCP server envFile {path!r} could not be read: {reason}."
INVALID_MCP_CONFIG = "invalid_mcp_config"
ERR_SERVERS_BODY = "Expected {{\"mcpServers\": {{name: config, ...}}}} (or a top-level \"servers\" object)."


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One MCP server, as configured (``${VAR}`` references unresolved)."""

    transport: Transport
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    disabled: bool = False  # registered but never started
    sampling: bool = False  # staff let it ask the calling run's model (MCP sampling, docs/mcp.md)
    env_file: str | None = None  # KEY=VALUE lines merged under ``env`` when starting (stdio)
    # True when a url came without ``type``/``transport``: the transport is then a guess from the
    # path, and an inferred streamable HTTP falls back to legacy SSE on HTTP 400/404/405 (C.8).
    transport_inferred: bool = False

    def expand(self, lookup: Lookup = os.environ.get) -> ServerConfig:
        """The config with ``${VAR}``/``${VAR:-default}`` resolved; raises InvalidRequest if the
        resolved url is unusable. Never log the result: it may hold secrets."""
        url = expand_vars(self.url, lookup) if self.url else None
        if url is not None:
            _check_url(url)
        env = expand_vars(dict(self.env), lookup)
        if self.env_file:
            env = {**read_env_file(expand_vars(self.env_file, lookup)), **env}
        return replace(
            self,
            command=expand_vars(self.command, lookup) if self.command else None,
            args=tuple(expand_vars(list(self.args), lookup)),
            env=env,
            cwd=expand_vars(self.cwd, lookup) if self.cwd else None,
            url=url,
            headers=expand_vars(dict(self.headers), lookup),
        )

    def referenced_vars(self) -> set[str]:
        """Names of the ``${VAR}``s this config needs (for env detection and redaction)."""
        return find_vars(
            [self.command, self.cwd, self.url, self.env_file, list(self.args), dict(self.env), dict(self.headers)]
        )


def read_env_file(path: str) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of an ``envFile`` as the common mcpServers format reads them:
    ``#`` comments, blank lines and an ``export`` prefix skipped, one pair of quotes removed."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(ERR_ENV_FILE.format(path=path, reason=type(exc).__name__), code=INVALID_MCP_CONFIG) from None
    out: dict[str, str] = {}
    for raw in lines:
        line = raw.strip().removeprefix("export ").strip()
        key, eq, value = line.partition("=")
        if not eq or line.startswith("#") or not key.strip():
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def validate_server_name(name: str) -> str:
    # The name prefixes tool ids ("{server}.{tool}") and LLM tool names, so keep it plain.
    if not isinstance(name, str) or not SERVER_NAME_RE.match(name):
        raise InvalidRequest(ERR_SERVER_NAME.format(name=name), detail={"server": name}, code=INVALID_MCP_CONFIG)
    return name


def normalize_server_config(config: Mapping[str, Any] | ServerConfig) -> ServerConfig:
    """Turn one ``mcpServers`` entry (any common dialect) into a ``ServerConfig``.

    ``command`` means stdio; ``type``/``transport`` picks between stdio, ``sse`` and streamable
    HTTP (``http``, ``streamable-http``, ``streamable_http``, ``streamableHttp``); a ``url``
    (or Windsurf's ``serverUrl``) without a type is SSE when its path ends in ``/sse``, else
    streamable HTTP with ``transport_inferred`` set, so the client manager falls back to legacy
    SSE if the server answers 400/404/405 (C.3 era detection). ``disabled``, ``envFile`` and our
    own ``sampling`` (opt-in to MCP sampling) are honoured; other keys of those formats (``autoApprove``, ...) are ignored.
    """
    if isinstance(config, ServerConfig):
        return config
    if not isinstance(config, Mapping):
        raise InvalidRequest(ERR_NOT_OBJECT)
    command = _opt_str(config, "command")
    url = _opt_str(config, "url") or _opt_str(config, "serverUrl")
    kind = config.get("type", config.get("transport"))
    inferred = False
    if kind is not None:
        if not isinstance(kind, str) or kind.lower() not in _TRANSPORTS:
            raise InvalidRequest(ERR_TRANSPORT.format(value=kind), detail={"field": "type"})
        transport = _TRANSPORTS[kind.lower()]
    elif command and url:
        raise InvalidRequest(ERR_BOTH_TARGETS)
    elif command:
        transport = "stdio"
    elif url:
        inferred = True
        transport = "sse" if urlsplit(url).path.rstrip("/").endswith("/sse") else "streamable_http"
    else:
        raise InvalidRequest(ERR_NO_TARGET)

    timeout = _seconds(config, "timeout_s", config.get("timeout", DEFAULT_TIMEOUT_S))
    common: dict[str, Any] = {
        "timeout_s": timeout,
        "connect_timeout_s": _seconds(config, "connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S),
        "disabled": _flag(config, "disabled"),
        "sampling": _flag(config, "sampling"),
    }

    if transport == "stdio":
        if not command:
            raise InvalidRequest(ERR_NEEDS_COMMAND, detail={"field": "command"})
        return ServerConfig(
            transport="stdio",
            command=command,
            args=tuple(_str_list(config, "args")),
            env=_str_map(config, "env"),
            cwd=_opt_str(config, "cwd"),
            env_file=_opt_str(config, "envFile"),
            **common,
        )
    if not url:
        raise InvalidRequest(ERR_NEEDS_URL.format(transport=transport), detail={"field": "url"})
    if "${" not in url:  # a url built from variables is checked once expanded
        _check_url(url)
    return ServerConfig(
        transport=transport,
        url=url,
        headers=_str_map(config, "headers"),
        transport_inferred=inferred,
        **common,
    )


def parse_mcp_servers(body: Any) -> dict[str, dict[str, Any]]:
    """The ``{name: config}`` map of an ``{"mcpServers": {...}}`` or VS Code ``{"servers": {...}}``
    body. Entries are checked for shape only: ``normalize_server_config`` validates each one, so
    one bad server can be reported without rejecting the others."""
    servers = None
    if isinstance(body, Mapping):
        servers = body.get("mcpServers", body.get("servers"))
    if not isinstance(servers, Mapping) or not servers:
        raise InvalidRequest(ERR_SERVERS_BODY)
    out: dict[str, dict[str, Any]] = {}
    for name, config in servers.items():
        validate_server_name(name)
        if not isinstance(config, Mapping):
            raise InvalidRequest(f"{ERR_NOT_OBJECT} ({name!r})", detail={"server": name}, code=INVALID_MCP_CONFIG)
        out[name] = dict(config)
    return out


# ---- tools ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MCPTool:
    """A tool as an MCP server lists it (``input_schema`` untouched)."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    title: str | None = None
    # execution.taskSupport "required": callable only as an MCP task, which agentsite does not
    # drive, so the tool is listed but never offered or called (docs/mcp.md).
    task_required: bool = False


def mcp_tool_id(server: str, tool: str) -> str:
    return f"{server}.{tool}"


def llm_tool_name(server: str, tool: str) -> str:
    """``{server}_{tool}`` made valid for LLM APIs (``^[A-Za-z0-9_-]{1,64}$``, C-1); over-long
    names keep a hash of the full id so two long names stay distinct."""
    name = _NOT_LLM_NAME_CHARS.sub("_", f"{server}_{tool}")
    if len(name) <= _LLM_NAME_MAX:
        return name
    digest = hashlib.sha1(mcp_tool_id(server, tool).encode()).hexdigest()[:8]
    return f"{name[: _LLM_NAME_MAX - 9]}_{digest}"


def mcp_tool_configs(server: str, tools: Iterable[MCPTool]) -> list[ToolConfig]:
    """One ``ToolConfig`` per listed tool, ready for the registry (schemas normalised once)."""
    configs: list[ToolConfig] = []
    used: set[str] = set()
    for tool in tools:
        if tool.task_required:
            continue
        name = llm_tool_name(server, tool.name)
        if name in used:  # "a.b" and "a_b" sanitise alike
            digest = hashlib.sha1(mcp_tool_id(server, tool.name).encode()).hexdigest()[:8]
            name = f"{name[: _LLM_NAME_MAX - 9]}_{digest}"
        used.add(name)
        configs.append(
            ToolConfig(
                tool_id=mcp_tool_id(server, tool.name),
                tool_type="mcp",
                name=name,
                description=tool.description or tool.title or "",
                parameters=normalize_tool_schema(tool.input_schema),
                server=server,
                remote_name=tool.name,
            )
        )
    return configs


def normalize_tool_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """An input schema LLM servers accept (C-14): local ``$ref``s inlined, root ``$defs`` /
    ``definitions`` / ``$schema`` dropped, root an object with ``properties``. A recursive
    reference is cut to ``{}`` (any value): LLM schemas can't express recursion anyway."""
    root: dict[str, Any] = dict(schema or {})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        rest = {k: resolve(v, seen) for k, v in node.items() if k != "$ref"}
        if not (isinstance(ref, str) and ref.startswith("#")):
            return rest
        target = _json_pointer(root, ref)
        if ref in seen or not isinstance(target, dict):
            return rest
        return {**resolve(target, (*seen, ref)), **rest}

    out = resolve(root, ())
    for key in ("$defs", "definitions", "$schema"):
        out.pop(key, None)
    out["type"] = "object"
    out.setdefault("properties", {})
    return out


def _json_pointer(doc: Any, ref: str) -> Any:
    node = doc
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


# ---- field helpers -------------------------------------------------------------------------


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest(ERR_URL.format(url=url), detail={"field": "url"})


def _seconds(config: Mapping[str, Any], key: str, default: Any) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidRequest(ERR_TIMEOUT.format(field=key), detail={"field": key})
    return float(value)


def _flag(config: Mapping[str, Any], key: str) -> bool:
    value = config.get(key, False)
    if not isinstance(value, bool):
        raise InvalidRequest(ERR_FIELD_TYPE.format(field=key, expected="true or false"), detail={"field": key})
    return value


def _opt_str(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(ERR_FIELD_TYPE.format(field=key, expected="a string"), detail={"field": key})
    return value


def _scalar(value: Any) -> str | None:
    # Config files often hold numbers where strings are meant (ports, flags); accept those.
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _str_list(config: Mapping[str, Any], key: str) -> list[str]:
    value = config.get(key) or []
    items = [_scalar(v) for v in value] if isinstance(value, list) else [None]
    if None in items:
        raise InvalidRequest(ERR_FIELD_TYPE.format(field=key, expected="a list of strings"), detail={"field": key})
    return cast("list[str]", items)


def _str_map(config: Mapping[str, Any], key: str) -> dict[str, str]:
    value = config.get(key) or {}
    expected = "an object of string values"
    if not isinstance(value, Mapping):
        raise InvalidRequest(ERR_FIELD_TYPE.format(field=key, expected=expected), detail={"field": key})
    out: dict[str, str] = {}
    for k, v in value.items():
        text = _scalar(v)
        if not isinstance(k, str) or text is None:
            raise InvalidRequest(ERR_FIELD_TYPE.format(field=key, expected=expected), detail={"field": key})
        out[k] = text
    return out
