"""Keys a worker remembers (accounts.services.known_key_user) are forgotten the moment they, or
their owners, change: through the real ASGI application, as a worker serves them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from tests.factories import UserFactory, api_key
from tests.security.test_hostile_input import call

pytestmark = pytest.mark.django_db(transaction=True)


async def _me(key: str) -> tuple[int, object]:
    status, _, body = await call("GET", "/v1/me", headers={"authorization": f"Bearer {key}"})
    return status, body


@pytest.fixture(autouse=True)
def _no_shedding(settings) -> None:
    """A loaded test machine may lag the loop past the shedding threshold on a first request."""
    settings.AGENTSITE = {**settings.AGENTSITE, "SHED_LAG_S": 600}


@pytest.fixture
def owner_and_key() -> tuple[object, str]:
    user = UserFactory(username="keyholder", password="x-pass-123456")
    return user, api_key(user)[1]


async def test_a_revoked_key_is_refused_on_the_next_request(owner_and_key) -> None:
    user, key = owner_and_key
    assert (await _me(key))[0] == 200
    assert (await _me(key))[0] == 200  # now answered from memory, without a query
    row = await ApiKey.objects.aget(user=user)
    status, _, _ = await call("DELETE", f"/v1/me/api-keys/{row.pk}", headers={"authorization": f"Bearer {key}"})
    assert status == 204
    status, body = await _me(key)
    assert (status, body["error"]["code"]) == (401, "authentication_failed")


async def test_a_deactivated_owner_and_an_expired_key_are_refused(owner_and_key) -> None:
    user, key = owner_and_key
    assert (await _me(key))[0] == 200
    user.is_active = False
    await user.asave()
    assert (await _me(key))[0] == 401
    user.is_active = True
    await user.asave()
    assert (await _me(key))[0] == 200
    row = await ApiKey.objects.aget(user=user)
    row.expires_at = timezone.now() + timedelta(seconds=1)
    await row.asave()
    assert (await _me(key))[0] == 200
    row.expires_at = timezone.now() - timedelta(seconds=1)
    await row.asave()
    assert (await _me(key))[0] == 401


async def test_a_remembered_key_still_notes_its_use_and_each_request_gets_its_own_user(owner_and_key) -> None:
    user, key = owner_and_key
    await ApiKey.objects.filter(user=user).aupdate(last_used_at=None)
    assert (await _me(key))[0] == 200
    first = (await ApiKey.objects.aget(user=user)).last_used_at
    assert first is not None
    status, body = await _me(key)
    assert status == 200 and body["username"] == "keyholder"
