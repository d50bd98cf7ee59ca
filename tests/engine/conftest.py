from __future__ import annotations

from typing import Iterator

import pytest

from inference.engine.mcp import MCPClientManager


@pytest.fixture
def mcp() -> Iterator[MCPClientManager]:
    manager = MCPClientManager()
    before = set(manager.servers())
    yield manager
    for name in set(manager.servers()) - before:
        manager.remove(name)
