"""An MCP server built on the SDK for the production tests of the MCP manager (docs/mcp.md):
large results, calls counted on disk (to see a call run once across a killed connection),
progress, a tool list that changes, a tool that requires tasks, a tool that asks the client's
model (sampling) and one that asks the user (elicitation).

Run: ``python -m tests.mcp_servers.prod_server --transport stdio|streamable-http|sse
[--json-response] [--newest-only] [--handshake-only] --port N``. ``--newest-only`` refuses the
initialize handshake, as a server that speaks only the newest protocol revision does;
``--handshake-only`` (streamable HTTP) refuses ``server/discover``, as servers from before that revision do
(such a session's sampling requests come on their own, not with the call's result). Executions are appended to
``$PROD_COUNT_DIR/<key>`` (one line each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import mcp_types
from mcp.server.mcpserver import Context, MCPServer
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel


class ProdServer(MCPServer):
    async def list_tools(self) -> list[mcp_types.Tool]:
        tools = await super().list_tools()
        for tool in tools:
            if tool.name == "background_job":  # the SDK's decorator can't declare it
                tool.execution = mcp_types.ToolExecution(task_support="required")
        return tools


server = ProdServer("prod-server", version="0.1")


def _count_file(key: str) -> Path:
    return Path(os.environ["PROD_COUNT_DIR"]) / key


@server.tool(structured_output=False)  # one copy of the text, not a structured mirror too
def big(mb: float) -> str:
    """Return ``mb`` megabytes of text."""
    size = int(mb * 1024 * 1024)
    return ("0123456789abcdef" * (size // 16 + 1))[:size]


@server.tool()
async def counted(key: str, seconds: float = 0.0) -> str:
    """Record one execution under ``key`` (on disk, so it outlives this process), then sleep."""
    with open(_count_file(key), "a") as f:
        f.write("ran\n")
    await asyncio.sleep(seconds)
    return f"ran {key}"


@server.tool()
async def slow_progress(steps: int, delay: float, ctx: Context) -> str:
    """Report progress ``steps`` times, ``delay`` seconds apart, then answer."""
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, message=f"step {i + 1} of {steps}")
        await asyncio.sleep(delay)
    return "finished"


@server.tool()
async def sleep(seconds: float, key: str = "") -> str:
    """Sleep; with ``key``, record the start and (unless cancelled) the end on disk."""
    if key:
        with open(_count_file(key), "a") as f:
            f.write("start\n")
    await asyncio.sleep(seconds)
    if key:
        with open(_count_file(key), "a") as f:
            f.write("end\n")
    return f"slept {seconds}"


@server.tool(structured_output=False)
async def ask_model(question: str, ctx: Context, offer_tool: bool = False) -> str | mcp_types.InputRequiredResult:
    """Ask the client's model (MCP sampling) and answer with what it said; ``offer_tool`` offers
    the model a tool (newest revision only: the SDK checks the client's capability otherwise)."""
    params = mcp_types.CreateMessageRequestParams(
        messages=[mcp_types.SamplingMessage(role="user", content=mcp_types.TextContent(type="text", text=question))],
        system_prompt="Answer in one word.",
        max_tokens=20,
        tools=[mcp_types.Tool(name="lookup", input_schema={"type": "object"})] if offer_tool else None,
    )
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:  # the request rides on the result, the answer on a retry
        if not ctx.input_responses:
            return mcp_types.InputRequiredResult(input_requests={"ask": mcp_types.CreateMessageRequest(params=params)})
        answer = ctx.input_responses["ask"]
    else:
        answer = await ctx.session.create_message(
            params.messages, max_tokens=params.max_tokens, system_prompt=params.system_prompt,
            related_request_id=ctx.request_id,
        )
    assert isinstance(answer, mcp_types.CreateMessageResult) and isinstance(answer.content, mcp_types.TextContent)
    return f"{answer.model} said: {answer.content.text}"


class Contact(BaseModel):
    email: str


@server.tool(structured_output=False)
async def ask_user(ctx: Context) -> str | mcp_types.InputRequiredResult:
    """Ask the user for an email address (MCP elicitation); answers with the client's action."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        if not ctx.input_responses:
            params = mcp_types.ElicitRequestFormParams(
                message="Which email address?", requested_schema=Contact.model_json_schema()
            )
            return mcp_types.InputRequiredResult(input_requests={"who": mcp_types.ElicitRequest(params=params)})
        answer = ctx.input_responses["who"]
        assert isinstance(answer, mcp_types.ElicitResult)
        return answer.action
    result = await ctx.elicit("Which email address?", Contact)
    return result.action


@server.tool(name="fs/read.v2")
def read_v2(path: str) -> str:
    """A tool whose name holds "/" and "." (as some servers name theirs)."""
    return f"read {path}"


@server.tool()
def background_job() -> str:
    """Listed as requiring task-augmented execution."""
    return "should not be called without a task"


def _renamed(text: str) -> str:
    """A tool added at runtime by ``reshape``."""
    return text[::-1]


@server.tool()
async def reshape(ctx: Context) -> str:
    """Add ``reverse``, remove ``background_job``, and announce the change (either era)."""
    server.add_tool(_renamed, name="reverse")
    server.remove_tool("background_job")
    await ctx.notify_tools_changed()
    if ctx.session.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        await ctx.session.send_tool_list_changed()
    return "reshaped"


def _refusing(app: Any, method: str, status: int, error: dict[str, Any]) -> Any:
    """ASGI middleware: answer POSTed ``method`` requests with ``status`` and JSON-RPC ``error``."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        request = json.loads(body or b"{}")
        if isinstance(request, dict) and request.get("method") == method:
            payload = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "error": error}).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json")]})
            return await send({"type": "http.response.body", "body": payload})
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await app(scope, replay, send)

    return wrapped


def _newest_only(app: Any) -> Any:
    """Answer ``initialize`` the way a newest-revision-only server does."""
    error = {"code": -32022, "message": "Unsupported protocol version", "data": {"supported": list(MODERN_PROTOCOL_VERSIONS)}}
    return _refusing(app, "initialize", 400, error)


def _handshake_only(app: Any) -> Any:
    """Answer ``server/discover`` the way a server from before the newest revision does."""
    return _refusing(app, "server/discover", 404, {"code": mcp_types.METHOD_NOT_FOUND, "message": "Method not found"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", choices=["stdio", "streamable-http", "sse"], default="stdio")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--json-response", action="store_true")
    parser.add_argument("--newest-only", action="store_true")
    parser.add_argument("--handshake-only", action="store_true")
    opts = parser.parse_args()

    time.sleep(float(os.environ.get("PROD_START_DELAY", "0")))  # a server slow to start (uvx, npx)
    if opts.transport == "stdio":
        server.run()
        return
    import uvicorn

    if opts.transport == "sse":
        app = server.sse_app()
    else:
        app = server.streamable_http_app(json_response=opts.json_response)
        if opts.newest_only:
            app = _newest_only(app)
        if opts.handshake_only:
            app = _handshake_only(app)
    uvicorn.run(app, host="127.0.0.1", port=opts.port, log_level="warning")


if __name__ == "__main__":
    main()
