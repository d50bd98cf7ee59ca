"""pytest fixture for the fake LLM server. Import it into a conftest:

    from tests.fakes.fixtures import fake_llm  # noqa: F401  (the fake model server fixture)
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator

import pytest

from tests.fakes.fake_llm import FakeLLMServer

_server: FakeLLMServer | None = None


def shared_fake_llm() -> FakeLLMServer:
    """One server per test session: starting uvicorn per test would dominate the run time.
    Kept out of fixtures so importing `fake_llm` alone is enough."""
    global _server
    if _server is None:
        _server = FakeLLMServer().start()
        atexit.register(_server.stop)
    return _server


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    """The shared fake with empty reply queues, request log and disconnect count."""
    server = shared_fake_llm()
    server.reset()
    yield server
