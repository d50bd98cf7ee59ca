"""Rename, search, regenerate, edit-and-resend, export and per-run usage of sessions, over HTTP
with the fake model server (both protocols)."""

from __future__ import annotations

import json
from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from registry.models import LLMModel
from sessions.models import Session, SessionMessage
from tests.api.test_registries import assert_error
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.inference.conftest import sent_messages
from tests.inference.test_infer import PNG
from tests.sse import parse_sse, streamed_body


def chat(client: APIClient, model: LLMModel, *texts: str) -> str:
    sid = "new"
    for text in texts:
        res = client.post("/v1/infer", {"model_id": model.model_id, "session_id": sid, "text": text}, format="json")
        assert res.status_code == 200, res.content
        sid = res.json()["session_id"]
    return sid


def rows(sid: str) -> list[tuple[str, object, bool]]:
    return [(m.role, m.content, m.superseded) for m in SessionMessage.objects.filter(session_id=sid).order_by("seq")]


def test_rename_trims_and_refuses_an_empty_title(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient,
                                                 bob_api: APIClient) -> None:
    sid = chat(alice_api, model, "hello")
    res = alice_api.patch(f"/v1/sessions/{sid}", {"title": "  Trip\n to   Lisbon "}, format="json")
    assert res.status_code == 200 and res.json()["title"] == "Trip to Lisbon"
    assert Session.objects.get(pk=sid).title == "Trip to Lisbon"
    assert_error(alice_api.patch(f"/v1/sessions/{sid}", {"title": "   "}, format="json"), 400, "validation_error")
    assert_error(alice_api.patch(f"/v1/sessions/{sid}", {"title": 5}, format="json"), 400, "validation_error")
    assert_error(alice_api.patch(f"/v1/sessions/{sid}", {"name": "x"}, format="json"), 400, "validation_error")
    assert_error(bob_api.patch(f"/v1/sessions/{sid}", {"title": "mine"}, format="json"), 404, "session_not_found")
    assert Session.objects.get(pk=sid).title == "Trip to Lisbon"


def test_search_finds_titles_and_message_text_of_the_callers_own_chats(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient, bob_api: APIClient
) -> None:
    fake_llm.script(["The capital is Lisbon.", "ok", "ok"])
    by_answer = chat(alice_api, model, "What is the capital of Portugal?")
    by_title = chat(alice_api, model, "zebra facts")
    chat(bob_api, model, "I also like Lisbon")
    found = [s["session_id"] for s in alice_api.get("/v1/sessions", {"q": "lisbon"}).json()["data"]]
    assert found == [by_answer]
    assert [s["session_id"] for s in alice_api.get("/v1/sessions", {"q": "ZEBRA"}).json()["data"]] == [by_title]
    assert len(alice_api.get("/v1/sessions", {"q": ""}).json()["data"]) == 2
    assert alice_api.get("/v1/sessions", {"q": "nothing like this"}).json()["data"] == []


def test_regenerate_supersedes_the_last_answer_and_answers_again(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    fake_llm.script(["Hi Ada.", "First try.", "Second try."])
    sid = chat(alice_api, model, "I am Ada.", "Tell me a joke.")
    res = alice_api.post(f"/v1/sessions/{sid}/regenerate", {}, format="json")
    assert res.status_code == 200, res.content
    assert res.json()["content"] == "Second try."
    # The model saw the conversation without the superseded answer.
    assert sent_messages(fake_llm) == [
        {"role": "user", "content": "I am Ada."},
        {"role": "assistant", "content": "Hi Ada."},
        {"role": "user", "content": "Tell me a joke."},
    ]
    assert rows(sid) == [
        ("user", "I am Ada.", False), ("assistant", "Hi Ada.", False), ("user", "Tell me a joke.", False),
        ("assistant", "First try.", True), ("assistant", "Second try.", False),
    ]
    detail = alice_api.get(f"/v1/sessions/{sid}").json()
    assert [m["superseded"] for m in detail["messages"]] == [False, False, False, True, False]


def test_regenerate_streams_without_a_body_and_uses_the_sessions_model(
    model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    fake_llm.script(["one", Reply(content="two again", chunk_size=3)])
    sid = chat(alice_api, model, "count")
    res = alice_api.post(f"/v1/sessions/{sid}/regenerate/stream")
    assert res.status_code == 200 and res["Content-Type"] == "text/event-stream"
    events = parse_sse(streamed_body(res))
    assert "".join(d.get("content", "") for e, d in events if e == "delta") == "two again"
    assert events[-1][0] == "done" and events[-1][1]["model_id"] == model.model_id


def test_edit_replaces_the_message_and_what_followed(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    fake_llm.script(["A", "B", "C"])
    sid = chat(alice_api, model, "first", "second")
    res = alice_api.post(f"/v1/sessions/{sid}/edit", {"seq": 0, "content": "first, edited"}, format="json")
    assert res.status_code == 200, res.content
    assert res.json()["content"] == "C"
    assert sent_messages(fake_llm) == [{"role": "user", "content": "first, edited"}]
    assert rows(sid) == [
        ("user", "first", True), ("assistant", "A", True), ("user", "second", True), ("assistant", "B", True),
        ("user", "first, edited", False), ("assistant", "C", False),
    ]
    # The next turn continues from the edited branch only.
    fake_llm.script(["D"])
    chat_res = alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": sid, "text": "and?"}, format="json")
    assert chat_res.json()["content"] == "D"
    assert [m["content"] for m in sent_messages(fake_llm)] == ["first, edited", "C", "and?"]


def test_edit_keeps_the_images_of_the_edited_message(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    message = {"role": "user", "content": "what is this?", "images": [PNG]}
    res = alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": "new", "messages": [message]}, format="json")
    sid = res.json()["session_id"]
    edited = alice_api.post(f"/v1/sessions/{sid}/edit", {"seq": 0, "content": "describe it"}, format="json")
    assert edited.status_code == 200, edited.content
    new_user = SessionMessage.objects.filter(session_id=sid, superseded=False, role="user").get()
    assert new_user.content == "describe it" and len(new_user.attachments) == 1


def test_bad_edits_and_regenerates_change_nothing(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient,
                                                  bob_api: APIClient) -> None:
    sid = chat(alice_api, model, "hello")
    before = rows(sid)
    assert_error(alice_api.post(f"/v1/sessions/{sid}/edit", {"seq": 1, "content": "x"}, format="json"), 400, "validation_error")
    assert_error(alice_api.post(f"/v1/sessions/{sid}/edit", {"seq": 99, "content": "x"}, format="json"), 400, "validation_error")
    assert_error(alice_api.post(f"/v1/sessions/{sid}/edit", {"content": "x"}, format="json"), 400, "validation_error")
    assert_error(alice_api.post(f"/v1/sessions/{sid}/edit", {"seq": "0", "content": "x"}, format="json"), 400,
                 "validation_error")
    assert_error(alice_api.post(f"/v1/sessions/{sid}/regenerate", {"model_id": "nope"}, format="json"), 404, "model_not_found")
    assert_error(bob_api.post(f"/v1/sessions/{sid}/regenerate", {}, format="json"), 404, "session_not_found")
    assert_error(bob_api.post(f"/v1/sessions/{sid}/edit", {"seq": 0, "content": "x"}, format="json"), 404, "session_not_found")
    assert rows(sid) == before
    assert not Session.objects.get(pk=sid).run_token  # the lock was released each time


def test_a_busy_session_cannot_be_regenerated(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    sid = chat(alice_api, model, "hello")
    Session.objects.filter(pk=sid).update(run_token="someone", run_lease_until=timezone.now() + timedelta(seconds=60))
    assert_error(alice_api.post(f"/v1/sessions/{sid}/regenerate", {}, format="json"), 409, "session_busy")


def test_each_answer_carries_the_usage_of_its_run(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    sid = chat(alice_api, model, "hello")
    answer = alice_api.get(f"/v1/sessions/{sid}").json()["messages"][-1]
    usage = answer["usage"]
    assert usage["total_tokens"] > 0 and usage["completion_tokens"] > 0 and usage["duration_ms"] >= 0
    assert alice_api.get(f"/v1/sessions/{sid}").json()["messages"][0]["usage"] is None


def test_export_as_markdown_and_json(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient, bob_api: APIClient) -> None:
    fake_llm.script(["Old answer", "Use ```fences``` **well**."])
    sid = chat(alice_api, model, "How do I write Markdown?")
    alice_api.post(f"/v1/sessions/{sid}/regenerate", {}, format="json")
    md = alice_api.get(f"/v1/sessions/{sid}/export", {"format": "markdown"})
    assert md.status_code == 200, md.content
    assert md["Content-Type"].startswith("text/markdown")
    assert md["Content-Disposition"] == f'attachment; filename="chat-{sid}.md"'
    text = md.content.decode()
    assert text.startswith("# How do I write Markdown?")
    assert "## User\n\nHow do I write Markdown?" in text and "Use ```fences``` **well**." in text
    assert "Old answer" not in text  # superseded: not part of the conversation any more
    js = alice_api.get(f"/v1/sessions/{sid}/export?format=json")
    assert js.status_code == 200 and js["Content-Disposition"].endswith('.json"')
    data = json.loads(js.content)
    assert data["session_id"] == sid and [m["superseded"] for m in data["messages"]] == [False, True, False]
    assert alice_api.get(f"/v1/sessions/{sid}/export").content.decode() == text  # markdown by default
    assert_error(alice_api.get(f"/v1/sessions/{sid}/export", {"format": "pdf"}), 400, "validation_error")
    assert_error(bob_api.get(f"/v1/sessions/{sid}/export", {"format": "json"}), 404, "session_not_found")


def test_export_fences_tool_output_so_it_cannot_break_out(model: LLMModel, fake_llm: FakeLLMServer, alice_api: APIClient,
                                                          adder) -> None:
    fake_llm.script([Reply(tool_calls=[("add", {"a": 1, "b": 2})]), "3"])
    res = alice_api.post("/v1/infer", {"model_id": model.model_id, "session_id": "new", "text": "add",
                                       "tool_ids": ["math.add"]}, format="json")
    sid = res.json()["session_id"]
    SessionMessage.objects.filter(session_id=sid, role="tool").update(content="```\n# not a heading\n```")
    text = alice_api.get(f"/v1/sessions/{sid}/export").content.decode()
    assert "````\n```\n# not a heading\n```\n````" in text


def test_the_new_endpoints_need_credentials(anon_api: APIClient) -> None:
    for method, path in [("patch", "/v1/sessions/s_x"), ("get", "/v1/sessions/s_x/export?format=json"),
                         ("post", "/v1/sessions/s_x/regenerate"), ("post", "/v1/sessions/s_x/edit"),
                         ("post", "/v1/sessions/s_x/regenerate/stream")]:
        assert getattr(anon_api, method)(path).status_code == 401, path
