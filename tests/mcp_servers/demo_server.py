"""A small MCP server for the engine's MCP tests, built on the SDK's ``MCPServer``.

Run: ``python -m tests.mcp_servers.demo_server --transport stdio|streamable-http|sse --port N``.
Streamable HTTP serves ``/mcp``, SSE serves ``/sse`` (+ ``/messages/``), both on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64

from mcp import MCPError
from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

# A 1x1 transparent PNG.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

server = MCPServer("demo-server", version="0.1")


class Weather(BaseModel):
    city: str
    temp_c: float


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def pixel() -> Image:
    """A 1x1 PNG image."""
    return Image(data=PIXEL_PNG, format="png")


@server.tool()
def weather(city: str) -> Weather:
    """Fake weather for a city (structured output)."""
    return Weather(city=city, temp_c=21.5)


@server.tool()
def fail(message: str) -> str:
    """Always fails with a message the model can read."""
    raise ToolError(message)


@server.tool()
def boom() -> str:
    """Raises an unexpected exception (its text stays on the server)."""
    raise ValueError("secret internals")


@server.tool()
def reject(reason: str) -> str:
    """Answer with a JSON-RPC error instead of a result (as many non-SDK servers do)."""
    raise MCPError(code=-32602, message=reason)


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then answer; used to exercise timeouts and concurrency."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
async def progress(steps: int, ctx: Context) -> str:
    """Report progress ``steps`` times, then answer."""
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, message=f"step {i + 1}")
    return "done"


def _extra(text: str) -> str:
    """A tool added at runtime by ``grow``."""
    return text.upper()


@server.tool()
async def grow(ctx: Context) -> str:
    """Register a new tool ``shout`` and announce the change to clients of either era."""
    server.add_tool(_extra, name="shout")
    await ctx.notify_tools_changed()  # newest revision: subscriptions/listen streams
    if ctx.session.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        await ctx.session.send_tool_list_changed()  # handshake era: a notification
    return "grown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", choices=["stdio", "streamable-http", "sse"], default="stdio")
    parser.add_argument("--port", type=int, default=8766)
    opts = parser.parse_args()
    if opts.transport == "stdio":
        server.run()
    else:
        server.run(opts.transport, host="127.0.0.1", port=opts.port)


if __name__ == "__main__":
    main()
