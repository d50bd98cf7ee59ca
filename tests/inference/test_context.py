"""Rolling summary and memory: long sessions keep working past the model's context window."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from inference.context import MEMORY_PROMPT, SUMMARY_PROMPT
from sessions.models import Session, SessionMessage
from tests.factories import LLMModelFactory, ToolFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply


def chat_requests(fake: FakeLLMServer) -> list[dict]:
    return [r.json for r in fake.requests if r.path in ("/v1/chat/completions", "/api/chat")]


def system_text(body: dict) -> str:
    return " ".join(m["content"] for m in body["messages"] if m["role"] == "system" and isinstance(m["content"], str))


@pytest.mark.parametrize("protocol", ["openai", "ollama"])
def test_summary_folds_old_turns_and_keeps_tool_pairs(db, fake_llm: FakeLLMServer, alice_api: APIClient, protocol: str) -> None:
    model = LLMModelFactory(model_id="small", api_protocol=protocol, fake=fake_llm, model_name="small")
    ToolFactory(tool_id="math.add",
                parameters={"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}})
    long = "lorem ipsum dolor sit amet " * 30  # ~800 chars a turn
    fake_llm.script([Reply(tool_calls=[("add", {"a": 1, "b": 2})]), Reply(content="three " + long)])
    sid = alice_api.post(
        "/v1/infer",
        {"model_id": "small", "session_id": "new", "tool_ids": ["math.add"], "text": "add 1 2 " + long},
        format="json",
    ).json()["session_id"]
    for i in range(3):
        fake_llm.script([Reply(content=f"answer {i} " + long)])
        alice_api.post("/v1/infer", {"model_id": "small", "session_id": sid, "text": f"question {i} " + long}, format="json")
    assert not fake_llm.requests[-1].json["messages"][0]["content"].startswith("Summary")  # nothing folded yet
    model.context_window = 1200  # now the history no longer fits
    model.save()
    fake_llm.reset()
    fake_llm.script(
        [Reply(content="SUMMARY: the user asked to add 1 and 2 (result 3) and three questions."), Reply(content="final")]
    )
    body = alice_api.post("/v1/infer", {"model_id": "small", "session_id": sid, "text": "last question"}, format="json").json()
    assert body["content"] == "final"
    summarize, answer = chat_requests(fake_llm)
    assert SUMMARY_PROMPT in system_text(summarize)
    assert "add" in str(summarize["messages"]) and "[tool math.add returned]: 3" in str(summarize["messages"])
    # the model got the summary and only recent turns; tool calls never separated from results
    assert "SUMMARY: the user asked" in system_text(answer)
    sent = answer["messages"]
    assert sent[-1]["content"] == "last question"
    assert "add 1 2" not in str(sent)
    for i, m in enumerate(sent):
        if m["role"] == "tool":
            assert sent[i - 1]["role"] in ("assistant", "tool")
    session = Session.objects.get(pk=sid)
    assert session.summary.startswith("SUMMARY:") and session.summarized_upto > 0
    # stored messages are never deleted
    assert SessionMessage.objects.filter(session_id=sid).count() == session.message_count == 4 + 2 * 3 + 2
    assert len(alice_api.get(f"/v1/sessions/{sid}").json()["messages"]) == session.message_count


def test_memory_is_extracted_off_the_critical_path_and_sent_later(
    transactional_db, fake_llm: FakeLLMServer, alice_api: APIClient, settings
) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "MEMORY_EXTRACTION": True}
    LLMModelFactory(model_id="m", fake=fake_llm, model_name="m")
    fake_llm.script(
        [Reply(content="Hello Ada!"), Reply(content='["The user\'s name is Ada.", "The user\'s name is Ada"]', first_delay_s=1.5)]
    )
    started = time.monotonic()
    body = alice_api.post(
        "/v1/infer", {"model_id": "m", "session_id": "new", "text": "I'm Ada, I write Python."}, format="json"
    ).json()
    assert time.monotonic() - started < 1.4, "the response waited for memory extraction"
    sid = body["session_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not Session.objects.get(pk=sid).memory:
        time.sleep(0.05)
    assert Session.objects.get(pk=sid).memory == ["The user's name is Ada."]  # deduplicated
    extraction = chat_requests(fake_llm)[1]
    assert MEMORY_PROMPT in system_text(extraction) and "I'm Ada" in str(extraction["messages"])
    fake_llm.script([Reply(content="Yes, Ada."), Reply(content="[]")])
    alice_api.post("/v1/infer", {"model_id": "m", "session_id": sid, "text": "Who am I?"}, format="json")
    later = chat_requests(fake_llm)[2]
    assert "The user's name is Ada." in system_text(later)
    assert alice_api.get(f"/v1/sessions/{sid}").json()["memory"] == ["The user's name is Ada."]
