"""The auth matrix over every /v1 endpoint: no key, bad key, user, staff, other user."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from registry.models import EnvVar
from sessions.models import Session
from templates_app.services import template_create
from tests.factories import LLMModelFactory, api_key

READS = ["/v1/models", "/v1/models/m1", "/v1/tools", "/v1/prompt-templates", "/v1/prompt-templates/greet",
         "/v1/prompt-templates/greet/versions", "/v1/sessions"]
STAFF_ONLY_READS = ["/v1/env"]
WRITES = [
    ("post", "/v1/models", {"model_id": "m2", "api_protocol": "openai", "api_base": "http://127.0.0.1:1/v1", "model_name": "x"}),
    ("patch", "/v1/models/m1", {"display_name": "New"}),
    ("put", "/v1/models/m1", {"display_name": "New"}),
    ("delete", "/v1/models/m1", None),
    ("post", "/v1/tools", {"tool_id": "t", "name": "t", "callable": "tests.tool_fns:add"}),
    ("post", "/v1/prompt-templates", {"name": "t2", "content": "x"}),
    ("patch", "/v1/prompt-templates/greet", {"content": "hi {{who}}!"}),
    ("delete", "/v1/prompt-templates/greet", None),
    ("post", "/v1/env", {"key": "FOO_TEST", "value": "x"}),
    ("delete", "/v1/env/EXISTING", None),
    ("post", "/v1/env/detect", None),
]
ALL = (
    [("get", p, None) for p in READS + STAFF_ONLY_READS]
    + WRITES
    + [("post", "/v1/prompt-templates/greet/render", {"arguments": {"who": "x"}})]
)


@pytest.fixture
def world(db):
    LLMModelFactory(model_id="m1", api_base="http://127.0.0.1:1/v1", model_name="x")
    template_create(name="greet", content="hi {{who}}")
    EnvVar.objects.create(key="EXISTING", value="v")


@pytest.mark.parametrize("method,path,body", ALL)
def test_it_answers_401_without_credentials(world, anon_api: APIClient, method: str, path: str, body) -> None:
    res = getattr(anon_api, method)(path, body, format="json")
    assert res.status_code == 401
    assert res.json()["error"]["code"] == "not_authenticated"
    assert res["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method,path,body", ALL)
def test_it_answers_401_with_a_bad_key(world, method: str, path: str, body) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer ask_not-a-real-key")
    res = getattr(client, method)(path, body, format="json")
    assert res.status_code == 401
    assert res.json()["error"]["code"] == "authentication_failed"


@pytest.mark.parametrize("path", READS)
def test_users_can_read_registries(world, alice_api: APIClient, path: str) -> None:
    assert alice_api.get(path).status_code == 200


@pytest.mark.parametrize("method,path,body", WRITES + [("get", p, None) for p in STAFF_ONLY_READS])
def test_users_cannot_write_registries_or_see_env(world, alice_api: APIClient, method: str, path: str, body) -> None:
    res = getattr(alice_api, method)(path, body, format="json")
    assert res.status_code == 403
    assert res.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("method,path,body", WRITES)
def test_staff_can_write_registries(world, staff_api: APIClient, method: str, path: str, body) -> None:
    res = getattr(staff_api, method)(path, body, format="json")
    assert res.status_code in (200, 201, 204), res.content


def test_a_revoked_key_is_refused(alice) -> None:
    key, plaintext = api_key(alice)
    key.is_active = False
    key.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert client.get("/v1/models").status_code == 401


def test_session_login_works_and_enforces_csrf(world, alice) -> None:
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="alice", password="alice-pass-123")
    assert client.get("/v1/models").status_code == 200
    res = client.post("/v1/sessions", {}, format="json")  # unsafe method without the CSRF token
    assert res.status_code == 403


def test_other_users_sessions_are_404(alice, bob, alice_api: APIClient, bob_api: APIClient) -> None:
    s = Session.objects.create(owner=alice, title="mine")
    assert alice_api.get(f"/v1/sessions/{s.pk}").status_code == 200
    assert bob_api.get(f"/v1/sessions/{s.pk}").status_code == 404
    assert bob_api.delete(f"/v1/sessions/{s.pk}").status_code == 404
    assert [x["session_id"] for x in bob_api.get("/v1/sessions").json()["data"]] == []
    assert Session.objects.filter(pk=s.pk).exists()
