"""Instant tools for bench/tool_loop.py (importable by the worker as ``bench._tools:echo``)."""

from __future__ import annotations

from inference.engine.tools.functions import tool


@tool(name="bench_echo", tool_id="bench_echo")
def echo(x: int) -> dict:
    """Return the number it was given.

    Args:
        x: any integer
    """
    return {"x": x}


@tool(name="bench_echo", tool_id="bench_aecho")
async def aecho(x: int) -> dict:
    """Return the number it was given (async).

    Args:
        x: any integer
    """
    return {"x": x}
