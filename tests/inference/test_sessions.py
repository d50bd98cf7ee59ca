"""Sessions through /v1/infer: new, resume, stateless, ownership, busy, faults — both protocols."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from registry.models import LLMModel
from sessions.models import Session, SessionMessage
from tests.api.test_registries import assert_error
from tests.factories import ToolFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.inference.conftest import sent_messages, stream
from tests.inference.test_infer import PNG


def stored(session_id: str) -> list[tuple[str, object, bool]]:
    return [(m.role, m.content, m.incomplete) for m in SessionMessage.objects.filter(session_id=session_id).order_by("seq")]


def test_new_then_resume_sends_the_history(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    fake_llm.script(["Nice to meet you, Ada.", "Your name is Ada."])
    first = alice_api.post(
        "/v1/infer", {"model_id": model.model_id, "session_id": "new", "text": "I am Ada."}, format="json"
    ).json()
    sid = first["session_id"]
    assert sid.startswith("s_")
    second = alice_api.post(
        "/v1/infer", {"model_id": model.model_id, "session_id": sid, "text": "Who am I?"}, format="json"
    ).json()
    assert second["session_id"] == sid and second["content"] == "Your name is Ada."
    assert sent_messages(fake_llm) == [
        {"role": "user", "content": "I am Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "Who am I?"},
    ]
    detail = alice_api.get(f"/v1/sessions/{sid}").json()
    assert detail["title"] == "I am Ada." and detail["message_count"] == 4
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant", "user", "assistant"]
    assert detail["usage"]["total_tokens"] > 0
    listing = alice_api.get("/v1/sessions").json()["data"]
    assert [s["session_id"] for s in listing] == [sid]


def test_stateless_stores_nothing(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    alice_api.post("/v1/infer", {"model_id": model.model_id, "text": "hi"}, format="json")
    assert not Session.objects.exists()


def test_stream_announces_the_session_first(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    events = stream(alice_api, {"model_id": model.model_id, "session_id": "new", "text": "hi"})
    assert events[0][0] == "session"
    sid = events[0][1]["session_id"]
    assert events[-1][1]["session_id"] == sid
    assert stored(sid) == [("user", "hi", False), ("assistant", "ok", False)]


def test_tool_calls_and_results_are_stored(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    ToolFactory(tool_id="math.add",
                parameters={"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}})
    fake_llm.script([Reply(tool_calls=[("add", {"a": 1, "b": 2})], thinking="need math"), Reply(content="3")])
    sid = alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": "new", "tool_ids": ["math.add"], "text": "1+2"},
                         format="json").json()["session_id"]
    rows = list(SessionMessage.objects.filter(session_id=sid).order_by("seq"))
    assert [r.role for r in rows] == ["user", "assistant", "tool", "assistant"]
    assert rows[1].tool_calls[0]["tool_id"] == "math.add" and rows[1].thinking == "need math"
    assert rows[2].tool_id == "math.add" and rows[2].duration_ms is not None and rows[2].is_error is False
    # resuming replays the call and its result in the protocol's own shape
    fake_llm.script(["again"])
    alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": sid, "text": "more"}, format="json")
    replay = sent_messages(fake_llm)
    assert replay[1]["tool_calls"] and replay[2]["role"] == "tool" and replay[2]["content"] == "3"


def test_templates_and_images_are_kept(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    from templates_app.services import template_create

    template_create(name="ask", content="Describe {{thing}}")
    sid = alice_api.post(
        "/v1/infer",
        {
            "model_id": model.model_id,
            "session_id": "new",
            "messages": [{"role": "user", "prompt_template": "ask", "arguments": {"thing": "this"}, "images": [PNG]}],
        },
        format="json",
    ).json()["session_id"]
    row = SessionMessage.objects.get(session_id=sid, seq=0)
    assert row.content == "Describe this" and row.prompt_template == "ask" and row.arguments == {"thing": "this"}
    assert row.attachments[0]["mime"] == "image/png" and "data" not in row.attachments[0]
    fake_llm.script(["still a pixel"])
    alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": sid, "text": "again?"}, format="json")
    first = sent_messages(fake_llm)[0]
    assert PNG in str(first)  # the stored image is sent again on resume


def test_other_users_cannot_resume_or_see(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient, bob_api: APIClient
) -> None:
    sid = alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": "new", "text": "secret"}, format="json").json()[
        "session_id"
    ]
    assert_error(
        bob_api.post("/v1/infer", {"model_id": model.model_id, "session_id": sid, "text": "x"}, format="json"),
        404,
        "session_not_found",
    )
    assert_error(bob_api.get(f"/v1/sessions/{sid}"), 404, "session_not_found")
    assert_error(bob_api.delete(f"/v1/sessions/{sid}"), 404, "session_not_found")
    assert_error(bob_api.post(f"/v1/sessions/{sid}/cancel"), 404, "session_not_found")
    assert bob_api.get("/v1/sessions").json()["data"] == []
    assert len(stored(sid)) == 2


def test_upstream_failure_keeps_the_user_message_and_the_error(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    fake_llm.script([Reply(status=500)])
    res = alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": "new", "text": "hello?"}, format="json")
    assert_error(res, 502, "model_unavailable")
    session = Session.objects.get()
    rows = list(session.messages.order_by("seq"))
    assert [(r.role, r.content) for r in rows] == [("user", "hello?"), ("assistant", "")]
    assert rows[1].incomplete and rows[1].error["code"] == "model_unavailable"
    assert session.run_token == ""  # the lock is released


def test_failure_mid_stream_keeps_the_partial_answer(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    fake_llm.script([Reply(content="first part and more", chunk_size=5, mid_stream_error="boom", error_after=2)])
    events = stream(alice_api, {"model_id": model.model_id, "session_id": "new", "text": "go"})
    sid = events[0][1]["session_id"]
    assert events[-1][0] == "error"
    rows = stored(sid)
    assert rows[0] == ("user", "go", False)
    assert rows[1][0] == "assistant" and rows[1][2] is True and "first part and more".startswith(rows[1][1]) and rows[1][1]


def test_a_busy_session_answers_409(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    sid = alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": "new", "text": "a"}, format="json").json()[
        "session_id"
    ]
    # A live run on another worker: its lease runs for another minute.
    Session.objects.filter(pk=sid).update(
        run_token="held-by-another-worker", run_lease_until=timezone.now() + timedelta(minutes=1)
    )
    assert_error(alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": sid, "text": "b"}, format="json"), 409,
                 "session_busy")
    assert_error(
        alice_api.post("/v1/infer/stream", {"model_id": model.model_id, "session_id": sid, "text": "b"}, format="json"),
        409,
        "session_busy",
    )
    assert len(stored(sid)) == 2  # nothing half-written


def test_bad_requests_leave_no_session(model: LLMModel, alice_api: APIClient) -> None:
    alice_api.post(
        "/v1/infer", {"model_id": model.model_id, "session_id": "new", "tool_ids": ["nope"], "text": "x"}, format="json"
    )
    alice_api.post("/v1/infer", {"model_id": "nope", "session_id": "new", "text": "x"}, format="json")
    assert not Session.objects.exists()


def test_cancel_with_nothing_running_is_409(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    sid = alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": "new", "text": "a"}, format="json").json()[
        "session_id"
    ]
    assert_error(alice_api.post(f"/v1/sessions/{sid}/cancel"), 409, "not_running")


def test_delete_removes_messages_and_files(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    from sessions.services import session_dir

    sid = alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": "new", "messages": [
        {"role": "user", "content": "x", "images": [PNG]}]}, format="json").json()["session_id"]
    assert session_dir(sid).exists()
    assert alice_api.delete(f"/v1/sessions/{sid}").status_code == 204
    assert not SessionMessage.objects.exists() and not session_dir(sid).exists()
