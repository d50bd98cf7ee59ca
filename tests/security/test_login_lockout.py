from __future__ import annotations

from django.core.cache import cache
from django.test import Client


def test_admin_login_locks_after_repeated_failures(staff_user) -> None:  # noqa: ANN001
    cache.clear()
    client = Client()
    for _ in range(5):
        res = client.post("/admin/login/", {"username": "staff", "password": "wrong"})
        assert res.status_code == 200
    # even the right password is refused now, without checking it
    res = client.post("/admin/login/", {"username": "staff", "password": "staff-pass-123"})
    assert "_auth_user_id" not in client.session
    cache.clear()
    client.post("/admin/login/", {"username": "staff", "password": "staff-pass-123"})
    assert "_auth_user_id" in client.session


def test_api_keys_are_unaffected_by_password_lockout(staff_user, staff_api) -> None:  # noqa: ANN001
    cache.clear()
    for _ in range(6):
        Client().post("/admin/login/", {"username": "staff", "password": "wrong"})
    assert staff_api.get("/v1/models").status_code == 200
    cache.clear()
