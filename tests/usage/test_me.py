"""/v1/me and /v1/me/api-keys: the caller's own account and keys, through HTTP."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from tests.factories import StaffFactory, UserFactory, bearer


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_me_says_who_the_caller_is(db) -> None:
    alice = UserFactory(username="alice")
    alice.groups.add(Group.objects.create(name="research"), Group.objects.create(name="admins"))
    client = client_with(bearer(alice)["Authorization"].split()[1])
    assert client.get("/v1/me").json() == {
        "username": "alice", "is_staff": False, "groups": ["admins", "research"], "quota": None,
        "usage_today": {"requests": 0, "total_tokens": 0},
    }
    assert client_with(bearer(StaffFactory(username="ops"))["Authorization"].split()[1]).get("/v1/me").json()["is_staff"]
    assert APIClient().get("/v1/me").status_code == 401


def test_keys_are_created_shown_once_listed_and_revoked_at_once(db) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    alice_api = client_with(bearer(alice, name="first")["Authorization"].split()[1])
    bob_api = client_with(bearer(bob)["Authorization"].split()[1])
    expires = (timezone.now() + timedelta(days=7)).replace(microsecond=0)
    res = alice_api.post("/v1/me/api-keys", {"name": "laptop", "expires_at": expires.isoformat()}, format="json")
    assert res.status_code == 201, res.content
    created = res.json()
    plaintext = created.pop("key")
    assert plaintext.startswith("ask_") and created["prefix"] == plaintext[:10] and created["name"] == "laptop"
    assert created["expires_at"].startswith(expires.strftime("%Y-%m-%dT%H:%M:%S"))
    assert plaintext not in str(ApiKey.objects.values_list())  # only a hash is stored
    listed = alice_api.get("/v1/me/api-keys").json()["data"]
    assert [k["name"] for k in listed] == ["laptop", "first"]
    assert all("key" not in k for k in listed) and set(listed[0]) == {"id", "name", "prefix", "created_at", "last_used_at",
                                                                        "expires_at"}
    laptop = client_with(plaintext)
    assert laptop.get("/v1/me").json()["username"] == "alice"
    assert alice_api.get("/v1/me/api-keys").json()["data"][0]["last_used_at"] is not None
    # bob neither sees nor deletes alice's keys
    assert [k["name"] for k in bob_api.get("/v1/me/api-keys").json()["data"]] == ["test"]
    assert bob_api.delete(f"/v1/me/api-keys/{created['id']}").status_code == 404
    assert laptop.get("/v1/me").status_code == 200
    assert alice_api.delete(f"/v1/me/api-keys/{created['id']}").status_code == 204
    res = laptop.get("/v1/me")
    assert res.status_code == 401 and res.json()["error"]["code"] == "authentication_failed"
    assert alice_api.delete(f"/v1/me/api-keys/{created['id']}").status_code == 404
    for odd in ("x", "²", "0", str(2**70)):
        assert alice_api.delete(f"/v1/me/api-keys/{odd}").json()["error"]["code"] == "not_found", odd
    assert [k["name"] for k in alice_api.get("/v1/me/api-keys").json()["data"]] == ["first"]


def test_an_expired_key_is_refused(db) -> None:
    alice = UserFactory(username="alice")
    alice_api = client_with(bearer(alice)["Authorization"].split()[1])
    plaintext = alice_api.post("/v1/me/api-keys", {"name": "short"}, format="json").json()["key"]
    assert client_with(plaintext).get("/v1/me").status_code == 200
    ApiKey.objects.filter(name="short").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client_with(plaintext).get("/v1/me").status_code == 401
    assert client_with(plaintext).post("/v1/infer", {"model_id": "m", "text": "hi"}, format="json").status_code == 401
    # one made with an expiry already past never works
    past = (timezone.now() - timedelta(days=1)).isoformat()
    stale = alice_api.post("/v1/me/api-keys", {"name": "stale", "expires_at": past}, format="json").json()["key"]
    assert client_with(stale).get("/v1/me").status_code == 401


def test_bad_key_requests_are_400(db) -> None:
    alice_api = client_with(bearer(UserFactory(username="alice"))["Authorization"].split()[1])
    for body in ({}, {"name": ""}, {"name": "x" * 101}, {"name": "k", "expires_at": "soon"},
                 {"name": "k", "colour": "red"}, {"name": 5}):
        res = alice_api.post("/v1/me/api-keys", body, format="json")
        assert res.status_code == 400 and res.json()["error"]["code"] == "validation_error", body
    assert [k["name"] for k in alice_api.get("/v1/me/api-keys").json()["data"]] == ["test"]  # nothing half-written
