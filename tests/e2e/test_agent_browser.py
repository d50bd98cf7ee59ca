"""The chat with an agent picked: it delegates to a second agent, whose work shows on the tool card."""

from __future__ import annotations

from typing import Any

import pytest

from agents.models import Agent
from tests.e2e.conftest import LiveServer
from tests.e2e.test_browser import log_in, page, world  # noqa: F401  (the browser fixtures)
from tests.factories import LLMModelFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply

pytestmark = pytest.mark.e2e

from playwright.sync_api import Page, expect  # noqa: E402  (test_browser has skipped the module without Playwright)


def test_an_agent_picked_in_the_chat_shows_its_sub_agent_at_work(page: Page, live_server_proc: LiveServer,  # noqa: F811
                                                                 world: dict[str, Any], fake_llm: FakeLLMServer) -> None:  # noqa: F811
    LLMModelFactory(model_id="helper-model", fake=fake_llm, model_name="helper", timeout_s=20)
    Agent.objects.create(name="writer", model_id="helper-model", description="Writes haiku.")
    Agent.objects.create(name="lead", model_id="fake", tool_ids=["agent.writer"], description="Delegates.")
    # The lead's answer after the tool comes 2 s late: the sub-run's live text is shown until the
    # run ends (then the stored turn replaces it), so this leaves time to see it whole.
    fake_llm.script([Reply(tool_calls=[("agent_writer", {"input": "A haiku about tea"}, "call_w")]),
                     Reply(content="Here it is.", first_delay_s=2.0)], model="fake-model")
    fake_llm.script([Reply(content="Steam curls from the cup", chunk_size=2, delay_s=0.05)], model="helper")

    log_in(page, live_server_proc.url, "carol")
    page.get_by_label("Model").select_option("agent:lead")
    prompt = page.get_by_label("Message", exact=True)
    prompt.fill("Write me a haiku")
    prompt.press("Enter")

    card = page.locator('.tool-card[data-call-id="call_w"]')
    expect(card.locator(".tool-subrun")).to_have_text("Steam curls from the cup")
    expect(card).to_have_attribute("data-state", "ok")
    expect(page.locator(".turn").last).to_contain_text("Here it is.")
    sent = [r.json for r in fake_llm.requests if r.json.get("model") == "fake-model"][0]
    assert [t["function"]["name"] for t in sent["tools"]] == ["agent_writer"]  # the agent's tools, none picked
