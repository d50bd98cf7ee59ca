"""Shared fixtures: a fixed cast of users and authenticated API clients.

The cast (after healthchecks' Alice/Bob/Charlie): ``staff`` manages registries, ``alice`` and
``bob`` are ordinary users who must never see each other's sessions.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from inference.context import memory_extractions_wait
from registry import cache
from tests.factories import StaffFactory, UserFactory, bearer
from tests.fakes.fixtures import fake_llm  # noqa: F401  (the fake model server fixture)
from tests.mcp_servers.fixtures import (  # noqa: F401  (the MCP fixtures, see there)
    demo_http_url,
    demo_sse_events_url,
    demo_sse_url,
    mcp,
)


@pytest.fixture(autouse=True)
def _fresh_registry_cache() -> None:
    """Each test starts from what its database holds (a rolled-back test leaves no signal)."""
    cache.drop()


@pytest.fixture(autouse=True)
def _no_memory_extraction(settings) -> None:
    """Memory extraction makes an extra model call per turn; only its own tests turn it on."""
    settings.AGENTSITE = {**settings.AGENTSITE, "MEMORY_EXTRACTION": False}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Before any fixture is torn down: a test's memory extractions end before its database is
    emptied (on PostgreSQL a late write deadlocks with the flush)."""
    assert memory_extractions_wait(30), "a memory extraction outlived its test"


def _client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=bearer(user)["Authorization"])
    return client


@pytest.fixture
def staff_user(db):
    return StaffFactory(username="staff", password="staff-pass-123")


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", password="alice-pass-123")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob", password="bob-pass-123")


@pytest.fixture
def staff_api(staff_user) -> APIClient:
    return _client_for(staff_user)


@pytest.fixture
def alice_api(alice) -> APIClient:
    return _client_for(alice)


@pytest.fixture
def bob_api(bob) -> APIClient:
    return _client_for(bob)


@pytest.fixture
def anon_api(db) -> APIClient:
    return APIClient()
