"""The MCP config normaliser, ${VAR} expansion, tool naming and schema normalisation (no I/O)."""

from __future__ import annotations

import re

import pytest

from inference.engine.errors import InvalidRequest
from inference.engine.mcp_config import (
    ERR_BOTH_TARGETS,
    ERR_NO_TARGET,
    MCPTool,
    ServerConfig,
    llm_tool_name,
    mcp_tool_configs,
    mcp_tool_id,
    normalize_server_config,
    normalize_tool_schema,
    parse_mcp_servers,
)

LLM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def test_a_command_means_stdio() -> None:
    cfg = normalize_server_config({"command": "uvx", "args": ["mcp-server-time", 8080], "env": {"TZ": "UTC", "N": 3}})
    assert cfg == ServerConfig(transport="stdio", command="uvx", args=("mcp-server-time", "8080"), env={"TZ": "UTC", "N": "3"})
    assert cfg.timeout_s == 60.0


def test_sampling_is_off_unless_staff_set_it() -> None:
    assert normalize_server_config({"command": "x"}).sampling is False
    assert normalize_server_config({"url": "http://h/mcp", "sampling": True}).sampling is True


@pytest.mark.parametrize(
    ("kind", "transport"),
    [
        ("sse", "sse"),
        ("http", "streamable_http"),
        ("streamable-http", "streamable_http"),
        ("streamable_http", "streamable_http"),
        ("streamableHttp", "streamable_http"),
    ],
)
@pytest.mark.parametrize("key", ["type", "transport"])
def test_it_reads_every_transport_spelling(key: str, kind: str, transport: str) -> None:
    cfg = normalize_server_config({"url": "https://api.example.com/x", key: kind, "headers": {"A": "b"}})
    assert cfg.transport == transport
    assert cfg.url == "https://api.example.com/x"
    assert cfg.headers == {"A": "b"}


def test_an_explicit_stdio_type_needs_a_command() -> None:
    assert normalize_server_config({"type": "stdio", "command": "x"}).transport == "stdio"
    with pytest.raises(InvalidRequest, match="command"):
        normalize_server_config({"type": "stdio", "url": "http://h/mcp"})


@pytest.mark.parametrize(
    ("config", "transport"),
    [
        ({"url": "http://127.0.0.1:9001/sse"}, "sse"),
        ({"url": "http://127.0.0.1:9001/sse/"}, "sse"),
        ({"url": "http://127.0.0.1:9000/mcp"}, "streamable_http"),
        ({"serverUrl": "https://h.example/mcp"}, "streamable_http"),
        ({"serverUrl": "https://h.example/v1/sse?key=1"}, "sse"),
    ],
)
def test_a_url_without_type_is_inferred_from_its_path(config: dict, transport: str) -> None:
    assert normalize_server_config(config).transport == transport


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, ERR_NO_TARGET),
        ({"args": ["x"]}, ERR_NO_TARGET),
        ({"command": "x", "url": "http://h/mcp"}, ERR_BOTH_TARGETS),
        ({"command": "x", "type": "websocket"}, "Unknown MCP transport"),
        ({"command": ["npx", "server"]}, "'command' must be a string"),
        ({"command": "x", "args": "a b"}, "'args' must be a list of strings"),
        ({"command": "x", "args": [{"a": 1}]}, "'args' must be a list of strings"),
        ({"command": "x", "env": ["A=1"]}, "'env' must be an object"),
        ({"command": "x", "env": {"A": None}}, "'env' must be an object"),
        ({"url": "http://h/mcp", "headers": {"A": True}}, "'headers' must be an object"),
        ({"url": "ftp://h/mcp"}, "absolute http"),
        ({"url": "/mcp"}, "absolute http"),
        ({"type": "sse"}, "needs a 'url'"),
        ({"command": "x", "timeout_s": 0}, "timeout_s"),
        ({"command": "x", "timeout": "10"}, "timeout_s"),
        ({"command": "x", "sampling": "yes"}, "'sampling' must be true or false"),
    ],
)
def test_bad_configs_are_rejected_with_a_clear_message(config: dict, message: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(message)) as info:
        normalize_server_config(config)
    assert info.value.code == "invalid_request"


def test_a_non_object_config_is_rejected() -> None:
    with pytest.raises(InvalidRequest):
        normalize_server_config(["command", "x"])  # type: ignore[arg-type]  # a wrong type on purpose


def test_parse_mcp_servers_accepts_both_top_level_shapes() -> None:
    entry = {"command": "uvx", "args": ["mcp-server-time"]}
    assert parse_mcp_servers({"mcpServers": {"time": entry}}) == {"time": entry}
    assert parse_mcp_servers({"servers": {"time": entry}, "inputs": []}) == {"time": entry}


@pytest.mark.parametrize(
    "body",
    [{}, {"mcpServers": {}}, {"mcpServers": []}, [], {"time": {"command": "x"}}, {"mcpServers": {"time": "uvx"}},
     {"mcpServers": {"bad.name": {"command": "x"}}}],
)
def test_parse_mcp_servers_rejects_other_shapes(body: object) -> None:
    with pytest.raises(InvalidRequest):
        parse_mcp_servers(body)


def test_vars_are_kept_in_the_config_and_expanded_on_demand() -> None:
    cfg = normalize_server_config(
        {
            "url": "https://${HOST}/mcp",
            "headers": {"Authorization": "Bearer ${TOKEN}", "X-Region": "${REGION:-eu}"},
        }
    )
    assert cfg.url == "https://${HOST}/mcp"
    assert cfg.referenced_vars() == {"HOST", "TOKEN", "REGION"}
    env = {"HOST": "api.example.com", "TOKEN": "s3cret"}
    expanded = cfg.expand(env.get)
    assert expanded.url == "https://api.example.com/mcp"
    assert expanded.headers == {"Authorization": "Bearer s3cret", "X-Region": "eu"}
    assert cfg.headers["Authorization"] == "Bearer ${TOKEN}"  # the stored config never holds the secret


def test_vars_expand_in_stdio_env_and_args() -> None:
    cfg = normalize_server_config(
        {"command": "srv", "args": ["--key", "${KEY}", "${MISSING}"], "env": {"K": "${KEY}", "D": "${D:-x}"}}
    )
    expanded = cfg.expand({"KEY": "abc"}.get)
    assert expanded.args == ("--key", "abc", "")
    assert expanded.env == {"K": "abc", "D": "x"}


def test_a_url_that_expands_to_nothing_usable_is_rejected_at_connect_time() -> None:
    cfg = normalize_server_config({"type": "http", "url": "${BASE}/mcp"})
    with pytest.raises(InvalidRequest, match="absolute http"):
        cfg.expand({}.get)
    assert cfg.expand({"BASE": "http://127.0.0.1:1"}.get).url == "http://127.0.0.1:1/mcp"


def test_tool_names_are_sanitised_for_llm_apis() -> None:
    assert mcp_tool_id("github", "repos/list.all") == "github.repos/list.all"
    assert llm_tool_name("github", "repos/list.all") == "github_repos_list_all"
    long_a = llm_tool_name("srv", "a" * 80 + "x")
    long_b = llm_tool_name("srv", "a" * 80 + "y")
    assert LLM_NAME.match(long_a) and LLM_NAME.match(long_b)
    assert long_a != long_b


def test_tool_configs_are_built_from_a_tool_list_without_name_collisions() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    tools = [MCPTool("a.b", "first", schema), MCPTool("a_b", "", schema, title="Second")]
    first, second = mcp_tool_configs("docs", tools)
    assert (first.tool_id, first.name, first.tool_type) == ("docs.a.b", "docs_a_b", "mcp")
    assert (first.server, first.remote_name, first.description) == ("docs", "a.b", "first")
    assert second.tool_id == "docs.a_b" and second.remote_name == "a_b"
    assert second.name != first.name and LLM_NAME.match(second.name)
    assert second.description == "Second"
    assert first.parameters == schema


def test_schemas_get_local_refs_inlined() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "where": {"$ref": "#/$defs/Place", "description": "the place"},
            "when": {"$ref": "#/definitions/When"},
            "definitions": {"type": "string"},  # a property that happens to be named so
        },
        "$defs": {"Place": {"type": "object", "properties": {"city": {"type": "string"}}}},
        "definitions": {"When": {"type": "string", "format": "date"}},
    }
    out = normalize_tool_schema(schema)
    assert out == {
        "type": "object",
        "properties": {
            "where": {"type": "object", "properties": {"city": {"type": "string"}}, "description": "the place"},
            "when": {"type": "string", "format": "date"},
            "definitions": {"type": "string"},
        },
    }


def test_recursive_refs_are_cut_and_empty_schemas_become_objects() -> None:
    tree = {
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/Node"}},
        "$defs": {"Node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
    }
    out = normalize_tool_schema(tree)
    assert out["properties"]["root"]["properties"]["children"]["items"] == {}
    assert "$defs" not in out
    assert normalize_tool_schema(None) == {"type": "object", "properties": {}}
    assert normalize_tool_schema({"type": "object", "additionalProperties": False}) == {
        "type": "object",
        "additionalProperties": False,
        "properties": {},
    }
