from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from inference.engine.http import set_transport_factory
from tests.engine.upstream import Server


@pytest.fixture
def server() -> Iterator[Server]:
    """Every outbound request of the engine goes to this scripted server."""
    srv = Server()
    set_transport_factory(lambda base_url: httpx.MockTransport(srv))
    yield srv
    set_transport_factory(None)
