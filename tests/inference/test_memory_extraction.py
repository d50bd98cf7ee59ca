"""Memory extraction with a small model: no sample fact in the prompt to copy, only facts the
user stated are kept, and the extra call counts in the session's usage. The fake server answers
the extraction call as a small model did (Qwen2.5-Coder-0.5B copied the old prompt's example)."""

from __future__ import annotations

import time

from rest_framework.test import APIClient

from inference.context import MEMORY_PROMPT, user_stated
from sessions.models import Session
from tests.factories import LLMModelFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply


def chat_requests(fake: FakeLLMServer) -> list[dict]:
    return [r.json for r in fake.requests if r.path in ("/v1/chat/completions", "/api/chat")]


def _memory_run(client: APIClient, fake: FakeLLMServer, text: str, memory_answer: str) -> tuple[str, dict]:
    """One turn in a new session; the fake answers the memory call with ``memory_answer``."""
    fake.script([Reply(content="Noted.", usage={"prompt_tokens": 10, "completion_tokens": 2}),
                 Reply(content=memory_answer, usage={"prompt_tokens": 100, "completion_tokens": 20})])
    sid = client.post("/v1/infer", {"model_id": "m", "session_id": "new", "text": text}, format="json").json()["session_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Session.objects.get(pk=sid).total_tokens < 132:
        time.sleep(0.05)
    return sid, chat_requests(fake)[-1]


def test_memory_prompt_has_no_sample_fact_and_a_leaked_one_is_not_stored(
    transactional_db, fake_llm: FakeLLMServer, alice_api: APIClient, settings
) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "MEMORY_EXTRACTION": True}
    LLMModelFactory(model_id="m", fake=fake_llm, model_name="m")
    # What Qwen2.5-Coder-0.5B answered to the old prompt for a user who never gave a name.
    sid, extraction = _memory_run(alice_api, fake_llm, "What is the capital of France?", '["The user\'s name is Ada."]')
    assert extraction["messages"][0]["content"] == MEMORY_PROMPT
    assert not any(quote in MEMORY_PROMPT for quote in ('"', "e.g.", "Ada", "name is"))  # nothing to copy
    assert "<conversation>" in extraction["messages"][1]["content"]
    session = Session.objects.get(pk=sid)
    assert session.memory == []
    # the memory call's tokens count in the session's totals (the turn's 12 + the call's 120)
    assert (session.prompt_tokens, session.completion_tokens, session.total_tokens) == (110, 22, 132)


def test_memory_keeps_what_the_user_said_about_themselves(
    transactional_db, fake_llm: FakeLLMServer, alice_api: APIClient, settings
) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "MEMORY_EXTRACTION": True}
    LLMModelFactory(model_id="m", fake=fake_llm, model_name="m")
    answer = '["The user\'s name is Bob.", "The user runs Arch Linux.", "The user lives in Oslo."]'
    sid, _ = _memory_run(alice_api, fake_llm, "I'm Bob and I run Arch Linux on my laptop.", answer)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not Session.objects.get(pk=sid).memory:
        time.sleep(0.05)
    # Oslo was never said by the user: an invented fact is dropped
    assert Session.objects.get(pk=sid).memory == ["The user's name is Bob.", "The user runs Arch Linux."]


def test_a_fact_naming_what_the_user_never_wrote_is_not_theirs() -> None:
    assert user_stated("The user's name is Bob.", "hi, I'm bob")
    assert user_stated("The user is 34 years old.", "I turned 34 today")
    assert user_stated("Prefers Rust over Go.", "i prefer rust over go")
    assert user_stated("The user writes code.", "I write code")  # nothing specific to check
    assert not user_stated("The user's name is Ada.", "What is the capital of France?")
    assert not user_stated("Ada is the user's name.", "hello")
    assert not user_stated("The user is 35 years old.", "I'm 34")
