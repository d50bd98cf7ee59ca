"""The chat pages and the admin console in a real browser (Debian's Chromium driven by
Playwright) against a real Daphne server and the fake model server.

Screenshots of the main states go to ``test-artifacts/``. ``UPDATE_DOCS_SCREENSHOT=1`` also
refreshes ``docs/screenshot-chat.png`` (the README's picture).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.models import LLMModel
from sessions.models import Session, SessionMessage
from templates_app.services import template_create
from tests.e2e.conftest import CHROMIUM, LiveServer
from tests.factories import ADD_PARAMS, LLMModelFactory, ToolFactory, UserFactory, save_fields
from tests.fakes.fake_llm import FakeLLMServer, Reply

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

# In CI the browser tests must run: a missing Chromium or Playwright is a failure there.
if not os.environ.get("CI") and not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)
if not os.environ.get("CI"):
    pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Browser, Dialog, Page, expect  # noqa: E402  (after the skip checks above)

pytestmark = pytest.mark.e2e

PASSWORD = "browser-pass-123"
ANSWER = "The sum is **5**.\n\n<script>window.__pwned = 1</script>\n\n```python\nprint(2 + 3)\n```\n\nDone."


@pytest.fixture
def page(browser: Browser, transactional_db) -> Iterator[Page]:
    # After the database fixture, so torn down before it: a page still fetching (a turn's messages
    # once its stream is done) must not meet the database being emptied under it.
    context = browser.new_context(viewport={"width": 1280, "height": 820}, color_scheme="light")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    # No script errors and no CSP violations on any page we visited.
    assert not [e for e in errors if "Failed to load resource" not in e], errors


@pytest.fixture
def world(transactional_db, fake_llm: FakeLLMServer, django_user_model) -> dict[str, Any]:
    user = UserFactory(username="carol", password=PASSWORD)
    admin = django_user_model.objects.create_superuser("root", password=PASSWORD)
    LLMModelFactory(model_id="fake", display_name="Fake GPT", fake=fake_llm, timeout_s=20)
    LLMModelFactory(model_id="down", display_name="Down model", model_name="down", timeout_s=5)  # nothing listens
    ToolFactory(tool_id="math.add", description="Add two integers.", parameters=ADD_PARAMS)
    template_create(name="greet", content="Say hello to {{name}} in {{language}}.", description="A friendly greeting")
    return {"user": user, "admin": admin}


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(base + "/")


def chat_requests(fake: FakeLLMServer) -> list[Any]:
    return [r for r in fake.requests if r.path == "/v1/chat/completions"]


def test_chat_end_to_end(page: Page, live_server_proc: LiveServer, world: dict[str, Any], fake_llm: FakeLLMServer) -> None:
    base = live_server_proc.url
    log_in(page, base, "carol")
    expect(page.locator(".empty-state")).to_be_visible()
    shot(page, "01-new-chat")

    # Pick a model and a tool.
    page.get_by_label("Model").select_option("fake")
    page.locator("#tool-picker summary").click()
    expect(page.get_by_text("Add two integers.")).to_be_visible()
    page.locator('input[name="tool_ids"][value="math.add"]').check()
    shot(page, "02-tool-picker")
    page.keyboard.press("Escape")
    expect(page.locator("#tool-count")).to_have_text("1")

    # Send: the model thinks, calls the tool, then streams a Markdown answer with a script in it.
    fake_llm.script([
        Reply(thinking="I should add the numbers.", tool_calls=[("add", {"a": 2, "b": 3})]),
        Reply(content=ANSWER, chunk_size=3, delay_s=0.04),
    ])
    prompt = page.get_by_label("Message", exact=True)
    prompt.fill("What is 2+3?")
    prompt.press("Enter")
    expect(page.locator(".msg-user .user-text").last).to_have_text("What is 2+3?")
    expect(prompt).to_have_value("")
    expect(page.locator("#stop-btn")).to_be_visible()

    # Tokens appear while the answer streams (plain text until it is done).
    streaming = page.locator(".md.streaming")
    expect(streaming).to_contain_text("The sum")
    expect(page.locator(".tool-card .tool-result")).to_have_text("5")
    shot(page, "03-streaming")
    assert page.locator(".md.streaming").count() <= 1

    # Done: the turn is replaced by the server's sanitized Markdown.
    final = page.locator(".turn .msg-assistant .md").last
    expect(final.locator("strong")).to_have_text("5")
    expect(final).to_contain_text("<script>window.__pwned = 1</script>")  # shown as text...
    assert page.evaluate("window.__pwned") is None  # ...and never run
    expect(final.locator(".code-block .copy-btn")).to_be_visible()
    expect(page.locator(".turn .tool-card[data-state=ok] .tool-result")).to_have_text("5")
    expect(page.locator(".turn details.thinking")).to_have_count(1)
    expect(page.locator("#send-btn")).to_be_visible()
    expect(prompt).to_be_focused()
    sent = chat_requests(fake_llm)[0].json
    assert [t["function"]["name"] for t in sent["tools"]] == ["add"]

    # The new session is in the sidebar, current, and in the URL.
    session = Session.objects.get(owner=world["user"])
    link = page.locator(f'.session-link[data-session-id="{session.pk}"]')
    expect(link).to_have_text("What is 2+3?")
    expect(link).to_have_attribute("aria-current", "page")
    expect(page).to_have_url(f"{base}/c/{session.pk}/")
    page.mouse.move(0, 0)
    shot(page, "04-answer")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):
        shutil.copy(ARTIFACTS / "04-answer.png", ROOT / "docs" / "screenshot-chat.png")

    # Copy button.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    final.locator(".copy-btn").click()
    expect(final.locator(".copy-btn")).to_contain_text("Copied")

    # Reload: the stored history renders server-side the same way.
    page.reload()
    expect(page.locator(".msg-assistant .md strong").first).to_have_text("5")
    expect(page.locator(".tool-card[data-state=ok] .tool-result")).to_have_text("5")
    assert page.evaluate("window.__pwned") is None

    # Switch chats without a full reload: a marker on window survives htmx swaps.
    page.evaluate("window.__same_page = true")
    page.locator("#new-chat").click()
    expect(page.locator(".empty-state")).to_be_visible()
    expect(page).to_have_url(base + "/")
    link.click()
    expect(page.locator(".msg-user .user-text").first).to_have_text("What is 2+3?")
    expect(page).to_have_url(f"{base}/c/{session.pk}/")
    assert page.evaluate("window.__same_page") is True

    # A prompt template: one field per variable, then Enter sends it.
    page.locator("#new-chat").click()
    expect(page.locator(".empty-state")).to_be_visible()
    page.get_by_label("Prompt template").select_option(label="greet")
    name_field = page.get_by_label("Template variable name")
    expect(name_field).to_be_focused()
    expect(page.locator(".tpl-fields [data-var]")).to_have_count(2)
    name_field.fill("Ada")
    name_field.press("Enter")  # moves on to the next field
    language = page.get_by_label("Template variable language")
    expect(language).to_be_focused()
    language.fill("French")
    shot(page, "05-template-form")
    fake_llm.script([Reply(content="Bonjour Ada !")])
    prompt.press("Enter")
    expect(page.locator(".turn .msg-assistant .md").last).to_have_text("Bonjour Ada !")
    expect(page.locator(".turn .msg-user .user-text").last).to_have_text("Say hello to Ada in French.")
    assert chat_requests(fake_llm)[-1].json["messages"][-1]["content"] == "Say hello to Ada in French."
    expect(page.locator(".tpl-fields")).to_have_count(0)

    # Stop cancels a slow answer; the partial answer stays.
    fake_llm.script([Reply(content="slow " * 400, chunk_size=5, delay_s=0.05)])
    prompt.fill("Tell me a long story")
    prompt.press("Enter")
    expect(page.locator(".md.streaming")).to_contain_text("slow slow")
    shot(page, "06-before-stop")
    page.locator("#stop-btn").click()
    expect(page.locator(".turn .note-stopped").last).to_be_visible()
    expect(page.locator("#send-btn")).to_be_visible()
    stopped_sid = page.locator("#conversation").get_attribute("data-session-id")
    partial = SessionMessage.objects.filter(session_id=stopped_sid, role="assistant").order_by("-seq").first()
    assert partial is not None and partial.incomplete and 0 < len(partial.content) < len("slow " * 400)
    expect(page.locator(".turn .msg-assistant .md").last).to_have_text(partial.content.strip())
    shot(page, "07-stopped")

    # An unavailable model: the error is shown in place, the page stays usable.
    page.get_by_label("Model").select_option("down")
    prompt.fill("anyone there?")
    prompt.press("Enter")
    error = page.locator(".msg-assistant .notice-error").last
    expect(error).to_contain_text("model_unavailable")
    expect(page.locator("#send-btn")).to_be_visible()
    shot(page, "08-model-unavailable")

    # Theme: toggled, remembered across a reload.
    assert page.evaluate("document.documentElement.dataset.theme || ''") == ""
    page.locator("#theme-toggle").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    shot(page, "09-dark")

    # Delete with confirmation.
    page.once("dialog", lambda dialog: dialog.accept())
    item = page.locator(".session-item", has=page.locator(f'[data-session-id="{session.pk}"]'))
    item.hover()
    item.locator(".session-delete").click()
    expect(page.locator(f'.session-link[data-session-id="{session.pk}"]')).to_have_count(0)
    assert not Session.objects.filter(pk=session.pk).exists()


def test_the_open_chat_can_be_deleted_and_a_refusal_keeps_it(
    page: Page, live_server_proc: LiveServer, world: dict[str, Any]
) -> None:
    keep = Session.objects.create(owner=world["user"], title="Keep me")
    gone = Session.objects.create(owner=world["user"], title="Delete me")
    log_in(page, live_server_proc.url, "carol")
    page.goto(f"{live_server_proc.url}/c/{gone.pk}/")
    dialogs: list[str] = []

    def answer(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss() if "Keep me" in dialog.message else dialog.accept()

    page.on("dialog", answer)
    page.get_by_role("button", name="Delete chat: Keep me").click()
    expect(page.locator(".session-link", has_text="Keep me")).to_have_count(1)
    page.get_by_role("button", name="Delete chat: Delete me").click()
    expect(page.locator(".empty-state")).to_be_visible()
    expect(page).to_have_url(live_server_proc.url + "/")
    expect(page.locator(".session-link", has_text="Delete me")).to_have_count(0)
    assert Session.objects.filter(pk=keep.pk).exists() and not Session.objects.filter(pk=gone.pk).exists()
    assert len(dialogs) == 2


def test_a_phone_sized_screen(browser: Browser, live_server_proc: LiveServer, world: dict[str, Any]) -> None:
    Session.objects.create(owner=world["user"], title="On the go")
    context = browser.new_context(viewport={"width": 390, "height": 780}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        log_in(page, live_server_proc.url, "carol")
        expect(page.locator("#sidebar")).not_to_be_in_viewport()
        expect(page.get_by_label("Message", exact=True)).to_be_visible()
        shot(page, "10-phone")
        page.get_by_role("button", name="Open the chat list").click()
        expect(page.locator("#sidebar")).to_be_in_viewport(ratio=1)
        expect(page.locator(".session-link", has_text="On the go")).to_be_visible()
        expect(page.locator("#new-chat")).to_be_focused()
        shot(page, "11-phone-sidebar")
        page.keyboard.press("Escape")
        expect(page.locator("#sidebar")).not_to_be_in_viewport()
        expect(page.locator("#sidebar")).to_be_hidden()  # out of the tab order while closed
    finally:
        context.close()


def test_admin_test_connection(page: Page, live_server_proc: LiveServer, world: dict[str, Any], fake_llm: FakeLLMServer) -> None:
    base = live_server_proc.url
    fake_llm.script([Reply(content="ok")], model="fake-model")
    log_in(page, base, "root")
    page.get_by_role("link", name="Admin console").click()
    expect(page).to_have_url(base + "/admin/")
    page.goto(base + "/admin/registry/llmmodel/")
    page.locator('input[name="_selected_action"]').first.wait_for()
    row = page.locator("#result_list tr", has_text="Fake GPT")
    row.locator('input[name="_selected_action"]').check()
    page.locator('select[name="action"]').select_option("test_connection")
    page.get_by_role("button", name=re.compile("Go|Run")).click()
    expect(page.locator(".messagelist .success")).to_contain_text(re.compile(r"fake: OK, answered in \d+ ms", re.I))
    shot(page, "12-admin-test-connection")

    # The detect page lists what the server offers.
    fake_llm.set_model("llama3:8b")
    page.get_by_role("link", name="Detect models on a server").click()
    page.get_by_label("Protocol").select_option("ollama")
    page.get_by_label("Base URL").fill(fake_llm.ollama_base)
    page.get_by_role("button", name="Detect models").click()
    expect(page.locator("#register-form")).to_contain_text("llama3:8b")
    shot(page, "13-admin-detect")
    started = time.monotonic()
    page.get_by_role("button", name="Register selected models").click()
    expect(page.locator(".messagelist .success")).to_contain_text("llama3:8b")
    assert time.monotonic() - started < 10
    assert LLMModel.objects.filter(model_id="llama3:8b", api_protocol="ollama").exists()


# A 1x1 PNG: enough for the browser to preview and the server to sniff.
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000201"
    "a5f6e2d40000000049454e44ae426082"
)


def send_attachments(page: Page, fake_llm: FakeLLMServer, text: str, answer: str) -> None:
    """Send ``text`` with the pending attachments; the model's ``answer`` is shown and the tray is emptied."""
    fake_llm.script([Reply(content=answer)])
    prompt = page.get_by_label("Message", exact=True)
    prompt.fill(text)
    prompt.press("Enter")
    expect(page.locator(".turn .msg-assistant .md").last).to_have_text(answer)
    expect(page.locator("#attachments")).to_be_hidden()


def test_an_attached_image_is_previewed_sent_and_shown_again(page: Page, live_server_proc: LiveServer, world: dict[str, Any],
                                                             fake_llm: FakeLLMServer) -> None:
    save_fields(LLMModel.objects.get(model_id="fake"), supports_vision=True)
    log_in(page, live_server_proc.url, "carol")
    page.get_by_label("Model").select_option("fake")
    page.locator("#file-input").set_input_files(files=[{"name": "dot.png", "mimeType": "image/png", "buffer": PNG_1PX}])
    expect(page.get_by_role("img", name="Attached image dot.png")).to_be_visible()
    send_attachments(page, fake_llm, "What is this?", answer="A tiny dot.")
    sent = chat_requests(fake_llm)[-1].json["messages"][-1]["content"]
    assert any(part.get("type") == "image_url" for part in sent), sent
    # The stored copy is served back to its owner (and allowed by the page's CSP).
    img = page.locator(".turn .msg-user img")
    expect(img).to_have_attribute("src", re.compile(r"^/c/s_[0-9a-f]+/files/[0-9a-f]{24}\.png$"))
    # A retrying property check, not wait_for_function: polling a string predicate needs eval,
    # which the page's CSP (rightly) forbids.
    expect(img).to_have_js_property("naturalWidth", 1)


def test_a_recording_reaches_the_model_as_wav(page: Page, live_server_proc: LiveServer, world: dict[str, Any],
                                              fake_llm: FakeLLMServer) -> None:
    save_fields(LLMModel.objects.get(model_id="fake"), supports_audio=True)
    log_in(page, live_server_proc.url, "carol")
    page.get_by_label("Model").select_option("fake")

    # Record about a second from Chromium's fake microphone; the clip is converted to WAV in the page.
    page.get_by_role("button", name="Record audio").click()
    stop = page.get_by_role("button", name="Stop recording")
    expect(stop).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#rec-timer")).to_be_visible()
    page.wait_for_timeout(1_100)
    stop.click()
    expect(page.get_by_label("Recorded audio")).to_be_visible()
    expect(page.get_by_role("button", name="Record audio")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#rec-timer")).to_be_hidden()
    shot(page, "14-recorded-audio")

    send_attachments(page, fake_llm, "What do you hear?", answer="I heard a beep.")

    # The model got the text and a WAV input_audio part (16 kHz mono 16-bit: ~32 kB a second).
    message = chat_requests(fake_llm)[-1].json["messages"][-1]
    assert message["role"] == "user"
    parts = {part["type"]: part for part in message["content"]}
    assert parts["text"]["text"] == "What do you hear?"
    assert parts["input_audio"]["input_audio"]["format"] == "wav"
    wav = base64.b64decode(parts["input_audio"]["input_audio"]["data"], validate=True)
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE" and wav[12:16] == b"fmt ", wav[:16]
    assert int.from_bytes(wav[4:8], "little") == len(wav) - 8
    assert 16_000 < len(wav) < 200_000, len(wav)

    # The stored user message keeps the recording, and the page plays it back from the server.
    session = Session.objects.get(owner=world["user"])
    stored = SessionMessage.objects.get(session=session, role="user")
    assert [(a["type"], a["format"]) for a in stored.attachments] == [("audio", "wav")], stored.attachments
    assert stored.attachments[0]["bytes"] == len(wav)
    page.reload()
    expect(page.locator(".msg-user audio")).to_have_attribute("src", re.compile(r"^/c/s_[0-9a-f]+/files/[0-9a-f]{24}\.wav$"))
