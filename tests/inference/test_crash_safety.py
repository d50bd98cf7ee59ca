"""Runs that end badly still end well: the answer is saved while it streams, the lease frees
the session whatever happens, and every stream closes with ``done`` or ``error``."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from registry.models import LLMModel
from sessions import services as session_store
from sessions.models import Session, SessionMessage
from tests.api.test_registries import assert_error
from tests.factories import ToolFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.inference.conftest import stream


def rows(sid: str) -> list[tuple[int, str, bool]]:
    return [(m.seq, m.role, m.incomplete) for m in SessionMessage.objects.filter(session_id=sid).order_by("seq")]


def test_a_streamed_answer_saved_as_drafts_ends_as_one_complete_message(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient, settings
) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "RUN_CHECKPOINT_S": 0.01}
    fake_llm.script([Reply(content="word " * 40, chunk_size=5, delay_s=0.01)])
    events = stream(alice_api, {"model_id": model.model_id, "session_id": "new", "text": "talk"})
    sid = events[0][1]["session_id"]
    assert events[-1][0] == "done"
    assert rows(sid) == [(0, "user", False), (1, "assistant", False)]
    assert SessionMessage.objects.get(session_id=sid, seq=1).content == "word " * 40
    assert Session.objects.get(pk=sid).run_token == ""


def test_deleting_the_session_mid_run_ends_the_stream_with_an_error(
    transactional_db, model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    # transactional: the tool deletes from its own thread, which must see the committed session
    ToolFactory(tool_id="wipe", name="wipe", callable="tests.tool_fns:delete_every_session", parameters={"type": "object"})
    fake_llm.script([Reply(tool_calls=[("wipe", {})]), Reply(content="never stored")])
    events = stream(alice_api, {"model_id": model.model_id, "session_id": "new", "text": "wipe", "tool_ids": ["wipe"]})
    assert events[-1][0] == "error" and events[-1][1]["error"]["code"] == "session_not_found"
    assert not Session.objects.exists()


def test_the_session_is_free_as_soon_as_done_is_sent(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    for _ in range(3):
        fake_llm.script([Reply(content="ok")])
    sid = stream(alice_api, {"model_id": model.model_id, "session_id": "new", "text": "a"})[0][1]["session_id"]
    for text in ("b", "c"):
        assert stream(alice_api, {"model_id": model.model_id, "session_id": sid, "text": text})[-1][0] == "done"


def new_session(api: APIClient, model: LLMModel) -> str:
    res = api.post("/v1/infer", {"model_id": model.model_id, "session_id": "new", "text": "a"}, format="json")
    return str(res.json()["session_id"])


def _held_by_another_worker(sid: str, *, lease_left_s: float) -> None:
    Session.objects.filter(pk=sid).update(run_token="elsewhere", run_started_at=timezone.now(),
                                          run_lease_until=timezone.now() + timedelta(seconds=lease_left_s))


def test_a_dead_workers_lock_expires_with_its_lease(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    fake_llm.script([Reply(content="first"), Reply(content="again")])
    sid = new_session(alice_api, model)
    _held_by_another_worker(sid, lease_left_s=30)
    assert_error(alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": sid, "text": "b"}, format="json"),
                 409, "session_busy")
    _held_by_another_worker(sid, lease_left_s=-1)  # its worker stopped renewing it
    res = alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": sid, "text": "b"}, format="json")
    assert res.status_code == 200 and res.json()["content"] == "again"


def test_cancel_releases_a_dead_workers_run_and_flags_a_live_one(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    fake_llm.script([Reply(content="first")])
    sid = new_session(alice_api, model)
    _held_by_another_worker(sid, lease_left_s=-1)
    assert alice_api.post(f"/v1/sessions/{sid}/cancel").status_code == 202
    assert Session.objects.get(pk=sid).run_token == ""
    assert_error(alice_api.post(f"/v1/sessions/{sid}/cancel"), 409, "not_running")

    _held_by_another_worker(sid, lease_left_s=30)
    assert alice_api.post(f"/v1/sessions/{sid}/cancel").status_code == 202
    # The run's own heartbeat learns it from the lease, even had the signal been lost.
    assert session_store.session_heartbeat(session_id=sid, token="elsewhere") == session_store.LOCK_CANCEL


def test_staff_release_a_lock_in_the_admin(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient, client, staff_user
) -> None:
    fake_llm.script([Reply(content="first")])
    sid = new_session(alice_api, model)
    _held_by_another_worker(sid, lease_left_s=300)
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    res = client.post("/admin/chat/session/", {"action": "release_lock", "_selected_action": [sid]}, follow=True)
    assert res.status_code == 200 and b"Released 1 lock" in res.content
    assert Session.objects.get(pk=sid).run_token == ""
    assert session_store.session_heartbeat(session_id=sid, token="elsewhere") == session_store.LOCK_LOST
