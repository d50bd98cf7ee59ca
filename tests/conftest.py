"""Shared fixtures: a fixed cast of users and authenticated API clients.

The cast (after healthchecks' Alice/Bob/Charlie): ``staff`` manages registries, ``alice`` and
``bob`` are ordinary users who must never see each other's sessions.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import StaffFactory, UserFactory, bearer
from tests.fakes.fixtures import fake_llm  # noqa: F401  (the fake model server fixture)
from tests.mcp_servers.fixtures import (  # noqa: F401  (the MCP fixtures, see there)
    demo_http_url,
    demo_sse_events_url,
    demo_sse_url,
    mcp,
)


@pytest.fixture(autouse=True)
def _no_memory_extraction(settings) -> None:
    """Memory extraction makes an extra model call per turn; only its own tests turn it on."""
    settings.AGENTSITE = {**settings.AGENTSITE, "MEMORY_EXTRACTION": False}


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
