"""registry 0006: accounts that were staff when rights became Django permissions keep every
registry right (``run_code`` included); nobody else gains one, and later staff start with none.

Migrated for real (``MigrationExecutor``): back to 0005, users made with the models of that
state, forward to 0006, then checked through the permissions and ``/v1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from registry.staff_rights import registry_codenames
from tests.factories import StaffFactory, bearer

BEFORE = [("registry", "0005_allowed_groups_and_run_code")]
AFTER = [("registry", "0006_existing_staff_keep_their_rights")]


def migrate(targets: list[tuple[str, str]]) -> Any:
    """Migrate to ``targets`` (a new executor each time: the applied set is read afresh) and
    return the apps of that state."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def at_0005(transactional_db) -> Iterator[Any]:
    """The database at registry 0005 (the apps of that state); fully migrated again afterwards,
    whatever the test did, so the tests after it find the schema they expect."""
    try:
        yield migrate(BEFORE)
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def rights(username: str) -> set[tuple[str, str]]:
    user = get_user_model().objects.get(username=username)
    return set(user.user_permissions.values_list("content_type__app_label", "codename"))


def api(username: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=bearer(get_user_model().objects.get(username=username))["Authorization"])
    return client


def test_existing_staff_keep_their_registry_rights_and_nobody_else_gains_one(at_0005) -> None:
    User = at_0005.get_model("auth", "User")
    User.objects.create(username="oldstaff", is_staff=True)
    User.objects.create(username="oldroot", is_staff=True, is_superuser=True)
    User.objects.create(username="olduser")
    User.objects.create(username="inactive_staff", is_staff=True, is_active=False)

    migrate(AFTER)

    every_right = set(registry_codenames())
    assert ("registry", "run_code") in every_right and ("agents", "add_agent") in every_right
    assert rights("oldstaff") == every_right
    assert rights("inactive_staff") == every_right  # kept for when the account is reactivated
    assert rights("olduser") == set()
    assert rights("oldroot") == set()  # a superuser holds every permission without rows
    assert get_user_model().objects.get(username="oldroot").has_perm("registry.run_code")

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    StaffFactory(username="newstaff", rights=())  # staff made after the migration get what they are given
    by_path = {"tool_id": "adder", "name": "adder", "callable": "tests.tool_fns:add",
               "parameters": {"type": "object", "properties": {}}}
    refused = api("newstaff").post("/v1/tools", by_path, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert api("olduser").post("/v1/tools", by_path, format="json").status_code == 403
    assert api("oldstaff").post("/v1/tools", by_path, format="json").status_code == 201  # add_tool and run_code
