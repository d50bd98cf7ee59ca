"""Importable functions used as `callable` tools in tests."""

from __future__ import annotations

import asyncio
import time


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def slow_echo(text: str, seconds: float = 0.05) -> str:
    await asyncio.sleep(seconds)
    return text


def explode(reason: str = "boom") -> str:
    raise RuntimeError(reason)


def block(seconds: float = 5.0) -> str:
    time.sleep(seconds)
    return "finished"


NOT_CALLABLE = 42


def delete_every_session() -> str:
    """Deletes every stored session, as a user deleting the chat mid-run would."""
    from sessions.models import Session

    Session.objects.all().delete()
    return "deleted"
