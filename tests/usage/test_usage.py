"""Usage records for every model call, GET /v1/usage, quotas (/v1/quotas and the 429s), through HTTP."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from accounts.models import ApiKey
from tests.factories import ADD_PARAMS, LLMModelFactory, StaffFactory, ToolFactory, UserFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.mcp_servers import free_port
from tests.sse import parse_sse, streamed_body
from usage.models import UsageRecord


def client_for(user) -> tuple[APIClient, int]:
    client = APIClient()
    headers = bearer(user)
    client.credentials(HTTP_AUTHORIZATION=headers["Authorization"])
    key_id = ApiKey.objects.get(user=user, prefix=headers["Authorization"].split()[1][:10]).pk
    return client, key_id


def infer(client: APIClient, **body) -> dict:
    res = client.post("/v1/infer", {"model_id": "m", "text": "hi", **body}, format="json")
    assert res.status_code == 200, res.content
    return res.json()


@pytest.fixture
def model(db, fake_llm: FakeLLMServer):
    return LLMModelFactory(model_id="m", fake=fake_llm, timeout_s=5)


def test_every_run_round_is_recorded_against_the_caller_and_key(model, fake_llm: FakeLLMServer) -> None:
    alice = UserFactory(username="alice")
    client, key_id = client_for(alice)
    ToolFactory(tool_id="math.add", parameters=ADD_PARAMS)
    fake_llm.script([
        Reply(tool_calls=[("add", {"a": 1, "b": 2})], usage={"prompt_tokens": 10, "completion_tokens": 3}),
        Reply(content="3", usage={"prompt_tokens": 20, "completion_tokens": 1}),
    ])
    body = infer(client, tool_ids=["math.add"], session_id="new")
    assert body["usage"] == {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34}
    rows = list(UsageRecord.objects.order_by("at", "id").values(
        "user__username", "api_key_id", "model_id", "session_id", "kind", "prompt_tokens", "completion_tokens",
        "total_tokens", "outcome", "agent"))
    assert rows == [
        {"user__username": "alice", "api_key_id": key_id, "model_id": "m", "session_id": body["session_id"], "kind": "chat",
         "prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13, "outcome": "ok", "agent": ""},
        {"user__username": "alice", "api_key_id": key_id, "model_id": "m", "session_id": body["session_id"], "kind": "chat",
         "prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21, "outcome": "ok", "agent": ""},
    ]
    # the session's own totals keep working
    assert client.get(f"/v1/sessions/{body['session_id']}").json()["usage"]["total_tokens"] == 34


def test_failed_and_streamed_calls_are_recorded_too(model, fake_llm: FakeLLMServer) -> None:
    bob = UserFactory(username="bob")
    client, _ = client_for(bob)
    fake_llm.script([Reply(status=500)])
    assert client.post("/v1/infer", {"model_id": "m", "text": "hi"}, format="json").status_code == 502
    fake_llm.script([Reply(content="streamed", usage={"prompt_tokens": 5, "completion_tokens": 2})])
    res = client.post("/v1/infer/stream", {"model_id": "m", "text": "hi"}, format="json")
    assert parse_sse(streamed_body(res))[-1][0] == "done"
    assert list(UsageRecord.objects.order_by("at", "id").values_list("outcome", "total_tokens", "session_id")) == [
        ("error", 0, ""), ("ok", 7, "")
    ]


def test_a_browser_session_call_has_no_key_id(model, fake_llm: FakeLLMServer, client) -> None:
    UserFactory(username="carol")
    client.login(username="carol", password="carol-pass-123")
    client.get("/")  # the CSRF cookie
    fake_llm.script(["hello"])
    res = client.post("/v1/infer", {"model_id": "m", "text": "hi"}, content_type="application/json",
                      HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert res.status_code == 200, res.content
    assert UsageRecord.objects.get().api_key_id is None


def test_summary_and_memory_calls_count_against_the_sessions_user(
    transactional_db, fake_llm: FakeLLMServer, settings
) -> None:
    model = LLMModelFactory(model_id="m", fake=fake_llm, timeout_s=5)
    dora = UserFactory(username="dora")
    client, key_id = client_for(dora)
    long = "lorem ipsum dolor sit amet " * 30
    fake_llm.script([Reply(content="a " + long), Reply(content="b " + long)])
    sid = infer(client, session_id="new", text="one " + long)["session_id"]
    infer(client, session_id=sid, text="two " + long)
    model.context_window = 1000  # the history no longer fits: the next run folds it into a summary
    model.save()
    settings.AGENTSITE = {**settings.AGENTSITE, "MEMORY_EXTRACTION": True}
    fake_llm.script(["SUMMARY: two long turns.", "ok", '["The user is Dora."]'])
    infer(client, session_id=sid, text="I am Dora.")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not UsageRecord.objects.filter(kind="memory").exists():
        time.sleep(0.05)
    assert sorted(UsageRecord.objects.values_list("kind", flat=True)) == ["chat", "chat", "chat", "memory", "summary"]
    assert set(UsageRecord.objects.values_list("user__username", "api_key_id", "session_id")) == {("dora", key_id, sid)}
    assert UsageRecord.objects.get(kind="summary").total_tokens > 0


def test_usage_report_groups_filters_and_shows_non_staff_only_their_own(model, fake_llm: FakeLLMServer) -> None:
    staff = StaffFactory(username="ops")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    (staff_api, _), (alice_api, alice_key), (bob_api, _) = client_for(staff), client_for(alice), client_for(bob)
    for client, tokens in ((alice_api, 10), (alice_api, 20), (bob_api, 5)):
        fake_llm.script([Reply(content="x", usage={"prompt_tokens": tokens, "completion_tokens": 1})])
        infer(client)
    everyone = staff_api.get("/v1/usage", {"group_by": "user"}).json()
    assert everyone["data"] == [
        {"key": "alice", "requests": 2, "prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32},
        {"key": "bob", "requests": 1, "prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    ]
    assert everyone["total"] == {"requests": 3, "prompt_tokens": 35, "completion_tokens": 3, "total_tokens": 38}
    assert staff_api.get("/v1/usage", {"group_by": "user", "user": "bob"}).json()["total"]["requests"] == 1
    # alice asks for bob's figures and everyone's: she gets her own
    for query in ({"user": "bob", "group_by": "user"}, {"group_by": "user"}):
        mine = alice_api.get("/v1/usage", query).json()
        assert [row["key"] for row in mine["data"]] == ["alice"] and mine["total"]["total_tokens"] == 32
    by_key = alice_api.get("/v1/usage", {"group_by": "key"}).json()["data"]
    assert by_key == [{"key": str(alice_key), "requests": 2, "prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32}]
    today = alice_api.get("/v1/usage").json()["data"]  # default: by day
    assert len(today) == 1 and today[0]["requests"] == 2
    assert alice_api.get("/v1/usage", {"from": "2020-01-01", "to": "2020-01-31"}).json()["total"]["requests"] == 0
    assert alice_api.get("/v1/usage", {"from": "0001-01-01", "to": "9999-12-31"}).json()["total"]["requests"] == 2
    for model_key, kind_key in ((staff_api.get("/v1/usage", {"group_by": "model"}).json()["data"],
                                 staff_api.get("/v1/usage", {"group_by": "kind"}).json()["data"]),):
        assert [r["key"] for r in model_key] == ["m"] and [r["key"] for r in kind_key] == ["chat"]
    assert alice_api.get("/v1/usage", {"from": "2026-02-02", "to": "2026-02-01"}).json() == {
        "data": [], "total": {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}
    for bad in ({"group_by": "planet"}, {"from": "yesterday"}, {"to": "2026-13-01"}):
        res = alice_api.get("/v1/usage", bad)
        assert res.status_code == 400 and res.json()["error"]["code"] == "validation_error", bad
    assert APIClient().get("/v1/usage").status_code == 401


def test_quotas_are_managed_by_staff_only(db) -> None:
    staff, alice = StaffFactory(username="ops"), UserFactory(username="alice")
    Group.objects.create(name="research")
    (staff_api, _), (alice_api, _) = client_for(staff), client_for(alice)
    res = staff_api.put("/v1/quotas/user/alice", {"tokens_per_day": 1000, "requests_per_minute": None}, format="json")
    assert res.status_code == 201 and res.json() == {"scope": "user", "name": "alice", "tokens_per_day": 1000,
                                                     "requests_per_minute": None}
    assert staff_api.put("/v1/quotas/user/alice", {"tokens_per_day": 500}, format="json").status_code == 200
    assert staff_api.put("/v1/quotas/group/research", {"requests_per_minute": 9}, format="json").status_code == 201
    assert staff_api.get("/v1/quotas").json()["data"] == [
        {"scope": "group", "name": "research", "tokens_per_day": None, "requests_per_minute": 9},
        {"scope": "user", "name": "alice", "tokens_per_day": 500, "requests_per_minute": None},
    ]
    for path, body, code in (
        ("/v1/quotas/user/nobody", {}, "not_found"), ("/v1/quotas/planet/x", {}, "not_found"),
        ("/v1/quotas/user/alice", {"tokens_per_day": -1}, "validation_error"),
        ("/v1/quotas/user/alice", {"tokens_per_day": "many"}, "validation_error"),
        ("/v1/quotas/user/alice", {"colour": 1}, "validation_error"),
    ):
        res = staff_api.put(path, body, format="json")
        assert res.json()["error"]["code"] == code, (path, body, res.content)
    assert alice_api.get("/v1/quotas").status_code == 403
    assert alice_api.put("/v1/quotas/user/alice", {"tokens_per_day": None}, format="json").status_code == 403
    assert alice_api.delete("/v1/quotas/user/alice").status_code == 403
    assert staff_api.delete("/v1/quotas/user/alice").status_code == 204
    assert staff_api.delete("/v1/quotas/user/alice").status_code == 404
    assert [q["name"] for q in staff_api.get("/v1/quotas").json()["data"]] == ["research"]


def test_a_user_over_the_token_quota_gets_429_before_any_model_call(model, fake_llm: FakeLLMServer) -> None:
    staff, alice = StaffFactory(username="ops"), UserFactory(username="alice")
    (staff_api, _), (alice_api, _) = client_for(staff), client_for(alice)
    staff_api.put("/v1/quotas/user/alice", {"tokens_per_day": 50}, format="json")
    # the run that crosses the limit is not cut off...
    fake_llm.script([Reply(content="long answer", usage={"prompt_tokens": 40, "completion_tokens": 30})])
    assert infer(alice_api)["content"] == "long answer"
    before = len(fake_llm.requests)
    # ...but the next request is refused, for every entry point of the run lifecycle
    for path in ("/v1/infer", "/v1/infer/stream"):
        res = alice_api.post(path, {"model_id": "m", "text": "more", "session_id": "new"}, format="json")
        assert res.status_code == 429, res.content
        error = res.json()["error"]
        assert error["code"] == "quota_exceeded"
        assert error["detail"]["limit"] == 50 and error["detail"]["used"] == 70
        assert error["detail"]["resets_at"].endswith("T00:00:00+00:00")
        assert 0 < int(res["Retry-After"]) <= 86400
    assert len(fake_llm.requests) == before
    assert alice_api.get("/v1/sessions").json()["data"] == []  # nothing half-written
    me = alice_api.get("/v1/me").json()
    assert me["quota"] == {"tokens_per_day": 50, "requests_per_minute": None, "scope": "user"}
    assert me["usage_today"] == {"requests": 1, "total_tokens": 70}
    # raising the quota lets her go on at once
    staff_api.put("/v1/quotas/user/alice", {"tokens_per_day": 500}, format="json")
    fake_llm.script(["fine"])
    assert infer(alice_api)["content"] == "fine"


def test_requests_per_minute_and_the_most_generous_group_wins(model, fake_llm: FakeLLMServer) -> None:
    staff, bob, eve = StaffFactory(username="ops"), UserFactory(username="bob"), UserFactory(username="eve")
    slow, fast = Group.objects.create(name="slow"), Group.objects.create(name="fast")
    bob.groups.add(slow, fast)
    eve.groups.add(slow)
    (staff_api, _), (bob_api, _), (eve_api, _) = client_for(staff), client_for(bob), client_for(eve)
    staff_api.put("/v1/quotas/group/slow", {"requests_per_minute": 1}, format="json")
    staff_api.put("/v1/quotas/group/fast", {"requests_per_minute": 3}, format="json")
    if time.time() % 60 > 55:  # all requests in one minute window
        time.sleep(61 - time.time() % 60)
    fake_llm.script(["a", "b", "c", "d"])
    statuses = [bob_api.post("/v1/infer", {"model_id": "m", "text": "hi"}, format="json").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert [eve_api.post("/v1/infer", {"model_id": "m", "text": "hi"}, format="json").status_code for _ in range(2)] == [200, 429]
    res = eve_api.post("/v1/infer", {"model_id": "m", "text": "hi"}, format="json")
    error = res.json()["error"]
    assert error["code"] == "rate_limited" and error["detail"]["limit"] == 1 and error["detail"]["used"] == 1
    assert 1 <= int(res["Retry-After"]) <= 60
    # a user's own quota wins over the groups'
    staff_api.put("/v1/quotas/user/eve", {"requests_per_minute": None, "tokens_per_day": None}, format="json")
    fake_llm.script(["free"])
    assert infer(eve_api)["content"] == "free"
    assert eve_api.get("/v1/me").json()["quota"]["scope"] == "user"
    assert bob_api.get("/v1/me").json()["quota"] == {"tokens_per_day": None, "requests_per_minute": 3, "scope": "group"}


def test_the_admin_lists_records_with_totals_per_user_and_model(model, fake_llm: FakeLLMServer, client) -> None:
    root = StaffFactory(username="root", is_superuser=True)
    (alice_api, _), (bob_api, _) = client_for(UserFactory(username="alice")), client_for(UserFactory(username="bob"))
    for api, tokens in ((alice_api, 11), (alice_api, 22), (bob_api, 7)):
        fake_llm.script([Reply(content="x", usage={"prompt_tokens": tokens, "completion_tokens": 0})])
        infer(api)
    client.force_login(root)
    page = client.get("/admin/usage/usagerecord/").content.decode()
    assert "Totals of the records shown, per user" in page and "per model" in page
    assert "<td>alice</td><td>2</td><td>33</td><td>0</td><td>33</td>" in page
    assert "<td>m</td><td>3</td><td>40</td><td>0</td><td>40</td>" in page
    filtered = client.get("/admin/usage/usagerecord/", {"q": "bob"}).content.decode()
    assert "<td>bob</td><td>1</td><td>7</td>" in filtered and "<td>alice</td>" not in filtered
    assert client.get("/admin/usage/quota/add/").status_code == 200


def test_requests_per_minute_hold_when_redis_is_unreachable(model, fake_llm: FakeLLMServer, settings, caplog) -> None:
    staff, fay = StaffFactory(username="ops"), UserFactory(username="fay")
    (staff_api, _), (fay_api, _) = client_for(staff), client_for(fay)
    staff_api.put("/v1/quotas/user/fay", {"requests_per_minute": 2}, format="json")
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: the real Redis keeps running
    if time.time() % 60 > 55:  # all requests in one minute window
        time.sleep(61 - time.time() % 60)
    fake_llm.script(["a", "b", "c"])
    statuses = [fay_api.post("/v1/infer", {"model_id": "m", "text": "hi"}, format="json") for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]  # counted in the database instead
    error = statuses[-1].json()["error"]
    assert error["code"] == "rate_limited" and error["detail"]["limit"] == 2 and error["detail"]["used"] == 2
    assert 1 <= int(statuses[-1]["Retry-After"]) <= 60
    assert len(fake_llm.requests) == 2
    assert "Redis unreachable (ConnectionError), counting in the database" in caplog.text
