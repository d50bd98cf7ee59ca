"""The chat's model and tool pickers in a real browser show each user only what their groups
may use: ``alice`` (research) sees the research model and tool, ``bob`` (sales) does not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.test_browser import PASSWORD, log_in
from tests.factories import ADD_PARAMS, LLMModelFactory, ToolFactory, UserFactory
from tests.fakes.fake_llm import FakeLLMServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def groups(transactional_db, fake_llm: FakeLLMServer) -> None:
    research, sales = Group.objects.create(name="research"), Group.objects.create(name="sales")
    LLMModelFactory(model_id="open", display_name="Open model", fake=fake_llm)
    LLMModelFactory(model_id="deep", display_name="Deep model", fake=fake_llm).allowed_groups.add(research)
    ToolFactory(tool_id="adder", parameters=ADD_PARAMS)
    ToolFactory(tool_id="deep_add", name="deep_add", parameters=ADD_PARAMS).allowed_groups.add(research)
    UserFactory(username="alice", password=PASSWORD).groups.add(research)
    UserFactory(username="bob", password=PASSWORD).groups.add(sales)


@pytest.mark.parametrize("username, sees", [("alice", True), ("bob", False)])
def test_the_pickers_hide_what_the_user_may_not_use(
    page: Page, live_server_proc: LiveServer, groups: None, username: str, sees: bool
) -> None:
    log_in(page, live_server_proc.url, username)
    models = page.locator("#model-select option")
    expect(page.locator('#model-select option[value="open"]')).to_have_count(1)
    expect(page.locator('#model-select option[value="deep"]')).to_have_count(1 if sees else 0)
    assert ("Deep model" in models.all_inner_texts()) is sees
    page.locator("#tool-picker summary").click()
    expect(page.locator('#tool-picker input[value="adder"]')).to_be_visible()
    expect(page.locator('#tool-picker input[value="deep_add"]')).to_have_count(1 if sees else 0)
