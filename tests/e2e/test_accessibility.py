"""axe-core (vendored, see tests/e2e/vendor/README.md) over the chat, the settings page and the
admin console: no serious or critical violations, at desktop and phone sizes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from playwright.sync_api import Browser, Page, expect

from registry.models import MCPServer
from sessions.models import Session, SessionMessage
from tests.e2e.conftest import LiveServer
from tests.e2e.test_browser import PASSWORD, log_in
from tests.factories import ADD_PARAMS, LLMModelFactory, ToolFactory, UserFactory
from tests.fakes.fake_llm import FakeLLMServer

pytestmark = pytest.mark.e2e

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
BLOCKING = ("serious", "critical")


@pytest.fixture(params=list(VIEWPORTS))
def page(request, browser: Browser) -> Iterator[Page]:
    phone = request.param == "phone"
    # The site's CSP forbids inline scripts, axe's injection included: the test's own context bypasses it.
    context = browser.new_context(viewport=VIEWPORTS[request.param], is_mobile=phone, has_touch=phone, bypass_csp=True)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def world(transactional_db, fake_llm: FakeLLMServer, django_user_model) -> dict[str, Any]:
    user = UserFactory(username="carol", password=PASSWORD)
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    LLMModelFactory(model_id="fake", display_name="Fake GPT", fake=fake_llm)
    ToolFactory(tool_id="math.add", description="Add two integers.", parameters=ADD_PARAMS)
    session = Session.objects.create(owner=user, title="A chat with everything", model_id="fake", total_tokens=42)
    rows = [
        {"role": "user", "content": "Add 2 and 3, then show code."},
        {"role": "assistant", "content": "", "thinking": "Use the tool.",
         "tool_calls": [{"id": "c1", "name": "add", "tool_id": "math.add", "arguments": {"a": 2, "b": 3}}]},
        {"role": "tool", "content": [{"type": "text", "text": "5"}], "tool_call_id": "c1", "tool_id": "math.add"},
        {"role": "assistant", "content": "It is **5**.\n\n```python\nprint(5)\n```",
         "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42, "duration_ms": 900}},
        {"role": "user", "content": "Again?"},
        {"role": "assistant", "content": "", "error": {"code": "model_unavailable", "message": "Connection refused."}},
    ]
    for seq, row in enumerate(rows):
        SessionMessage.objects.create(session=session, seq=seq, **row)
    Session.objects.filter(pk=session.pk).update(message_count=len(rows))
    server = MCPServer.objects.create(name="demo", config={"command": "true", "args": [], "env": {"API_TOKEN": "s3cret"}})
    return {"session": session, "server": server}


def violations(page: Page) -> list[str]:
    page.add_script_tag(content=AXE)
    found = page.evaluate("async () => (await axe.run(document, { resultTypes: ['violations'] })).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}"
        for v in found if v["impact"] in BLOCKING
    ]


def test_the_chat_and_settings_pages(page: Page, live_server_proc: LiveServer, world: dict[str, Any]) -> None:
    base = live_server_proc.url
    log_in(page, base, "carol")
    assert violations(page) == []
    page.goto(f"{base}/c/{world['session'].pk}/")
    expect(page.locator(".tool-card")).to_have_count(1)
    expect(page.locator(".msg .notice-error")).to_have_count(1)
    page.emulate_media(reduced_motion="reduce")  # no colour transitions: axe must see the theme, not a blend
    for theme in ("light", "dark"):
        page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
        assert violations(page) == [], theme
    page.goto(f"{base}/settings/")
    assert violations(page) == []


ADMIN_PAGES = [
    "/admin/",
    "/admin/registry/llmmodel/",
    "/admin/registry/llmmodel/add/",
    "/admin/registry/tool/",
    "/admin/registry/mcpserver/{server}/change/",
    "/admin/chat/session/",
    "/admin/chat/session/{session}/change/",
]


def test_the_admin_console(page: Page, live_server_proc: LiveServer, world: dict[str, Any]) -> None:
    base = live_server_proc.url
    log_in(page, base, "root")
    ids = {"server": quote(world["server"].pk), "session": quote(world["session"].pk)}
    problems = {}
    for path in ADMIN_PAGES:
        response = page.goto(base + path.format(**ids))
        assert response is not None and response.status == 200, path
        found = violations(page)
        if found:
            problems[path] = found
    assert problems == {}
