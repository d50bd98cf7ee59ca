"""The chat's settings page in a real browser: default model, API keys (shown once, usable,
revoked), password; reached from the chat's sidebar."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.test_browser import PASSWORD, log_in, shot
from tests.factories import LLMModelFactory, UserFactory
from tests.fakes.fake_llm import FakeLLMServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture
def world(transactional_db, fake_llm: FakeLLMServer) -> dict[str, Any]:
    LLMModelFactory(model_id="fake", display_name="Fake GPT", fake=fake_llm)
    LLMModelFactory(model_id="other", display_name="Other model", fake=fake_llm)
    return {"user": UserFactory(username="dora", password=PASSWORD)}


def test_settings_page_sets_the_default_model_manages_keys_and_changes_the_password(
    page: Page, live_server_proc: LiveServer, world: dict[str, Any]
) -> None:
    base = live_server_proc.url
    log_in(page, base, "dora")
    page.locator("#settings-link").click()
    expect(page).to_have_url(base + "/settings/")
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()

    # default model: a new chat starts with it
    page.locator("#id_model_id").select_option("other")
    page.locator("#model-form").get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("New chats start with other.")
    page.locator("#back-to-chat").click()
    expect(page.get_by_label("Model")).to_have_value("other")
    page.goto(base + "/settings/")

    # an API key: shown once, works at once, refused once revoked
    page.locator("#key-form").get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key-value").inner_text()
    assert key.startswith("ask_")
    expect(page.locator('tr[data-key-name="laptop"]')).to_contain_text(key[:10])
    shot(page, "settings-new-key")
    bearer = {"Authorization": f"Bearer {key}"}
    assert httpx.get(base + "/v1/me", headers=bearer).json()["username"] == "dora"
    page.goto(base + "/settings/")
    expect(page.locator("#new-key")).to_have_count(0)  # never shown again
    page.get_by_role("button", name="Revoke laptop").click()
    expect(page.get_by_role("status")).to_contain_text("was revoked")
    expect(page.locator('tr[data-key-name="laptop"]')).to_have_count(0)
    assert httpx.get(base + "/v1/me", headers=bearer).status_code == 401

    # the password: a wrong old one is refused, a right one changes it
    form = page.locator("#password-form")
    form.locator("#id_old_password").fill("not-it")
    form.locator("#id_new_password1").fill("a-new-pass-456")
    form.locator("#id_new_password2").fill("a-new-pass-456")
    form.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-form")).to_contain_text("Your old password was entered incorrectly")
    form = page.locator("#password-form")
    form.locator("#id_old_password").fill(PASSWORD)
    form.locator("#id_new_password1").fill("a-new-pass-456")
    form.locator("#id_new_password2").fill("a-new-pass-456")
    form.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password was changed.")
    assert get_user_model().objects.get(username="dora").check_password("a-new-pass-456")
    page.goto(base + "/settings/")  # still logged in here
    expect(page).to_have_url(base + "/settings/")
