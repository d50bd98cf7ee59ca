"""The chat's fixes and additions of issue 18 in a real browser, at a desktop (1280×800) and a
phone (390×844) size: long answers, long titles, images for a model without vision, error
notices, rename, search, regenerate, edit-and-resend, copy, usage, export, the remembered model.

Same set-up as test_browser.py: Debian's Chromium driven by Playwright, a real Daphne server,
the fake model server (importing test_browser skips this module when either browser part is absent).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from registry.models import LLMModel
from sessions.models import Session, SessionMessage
from tests.e2e.conftest import LiveServer
from tests.e2e.test_browser import PASSWORD, PNG_1PX, chat_requests, log_in, shot
from tests.factories import LLMModelFactory, UserFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply
from web.errors import ERROR_TEXT

pytestmark = pytest.mark.e2e

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(params=list(VIEWPORTS))
def size(request) -> str:
    return request.param


@pytest.fixture
def page(browser: Browser, size: str) -> Iterator[Page]:
    phone = size == "phone"
    context = browser.new_context(viewport=VIEWPORTS[size], is_mobile=phone, has_touch=phone, color_scheme="light")
    context.set_default_timeout(10_000)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    assert not [e for e in errors if "Failed to load resource" not in e], errors


@pytest.fixture
def world(transactional_db, fake_llm: FakeLLMServer) -> dict[str, Any]:
    user = UserFactory(username="carol", password=PASSWORD)
    LLMModelFactory(model_id="fake", display_name="Fake GPT", fake=fake_llm, timeout_s=20, supports_vision=False)
    LLMModelFactory(model_id="eyes", display_name="Seeing model", fake=fake_llm, timeout_s=20, supports_vision=True)
    LLMModelFactory(model_id="down", display_name="Down model", model_name="down", timeout_s=5)  # nothing listens
    return {"user": user}


def open_chat_list(page: Page, size: str) -> None:
    if size == "phone":
        page.get_by_role("button", name="Open the chat list").click()
        expect(page.locator("#sidebar")).to_be_in_viewport(ratio=1)


def ask(page: Page, text: str) -> None:
    prompt = page.get_by_label("Message", exact=True)
    prompt.fill(text)
    prompt.press("Enter")


def long_answer(paragraphs: int = 60, words: int = 50) -> str:
    return "\n\n".join(" ".join(f"w{p}x{i}" for i in range(words)) + "." for p in range(paragraphs))


def test_a_long_answer_streams_without_freezing_and_ends_in_view(
    page: Page, size: str, live_server_proc: LiveServer, world: dict[str, Any], fake_llm: FakeLLMServer
) -> None:
    log_in(page, live_server_proc.url, "carol")
    page.evaluate("""() => {
        window.__longest = 0;
        new PerformanceObserver((list) => {
            for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
        }).observe({ type: "longtask", buffered: true });
    }""")
    page.get_by_label("Model").select_option("fake")
    text = long_answer()
    assert len(text.split()) == 3000
    fake_llm.script([Reply(content=text, chunk_size=24, delay_s=0.002)])
    started = time.monotonic()
    ask(page, "Write a lot")
    # Paragraphs appear as they stream: a new paragraph per blank line, not one growing block.
    expect(page.locator(".md.streaming p").nth(3)).to_be_attached()
    # The page answers input while it streams.
    probe = time.monotonic()
    assert page.evaluate("1 + 1") == 2 and time.monotonic() - probe < 0.5
    last = page.locator(".turn .msg-assistant .md p").last
    expect(last).to_have_text(re.compile(r"w59x49\.$"), timeout=15_000)
    took = time.monotonic() - started
    assert took < 10, took
    assert page.evaluate("window.__longest") < 200
    # The whole answer is in view: its end is not below the visible part of the conversation.
    expect(page.locator(".turn .answer-actions").last).to_be_in_viewport()
    gap = page.evaluate("""() => {
        const c = document.querySelector('#conversation');
        return c.scrollHeight - c.scrollTop - c.clientHeight;
    }""")
    assert gap <= 2, gap
    shot(page, f"18-long-answer-{size}")


def test_long_titles_keep_every_chats_controls_in_view(page: Page, size: str, live_server_proc: LiveServer,
                                                       world: dict[str, Any]) -> None:
    Session.objects.create(owner=world["user"], title="Short one")
    Session.objects.create(owner=world["user"], title="A very long title " * 10)
    log_in(page, live_server_proc.url, "carol")
    open_chat_list(page, size)
    nav = page.locator(".session-nav")
    assert nav.evaluate("n => n.scrollWidth <= n.clientWidth")
    sidebar = page.locator("#sidebar").bounding_box()
    assert sidebar is not None
    for item in page.locator(".session-item").all():
        item.hover()
        box = item.locator(".session-delete").bounding_box()
        assert box is not None and box["x"] + box["width"] <= sidebar["x"] + sidebar["width"] + 0.5
        expect(item.locator(".session-delete")).to_be_in_viewport(ratio=1)
    shot(page, f"19-long-titles-{size}")


def test_an_image_is_refused_up_front_for_a_model_without_vision_and_kept(
    page: Page, size: str, live_server_proc: LiveServer, world: dict[str, Any], fake_llm: FakeLLMServer, tmp_path
) -> None:
    image = tmp_path / "dot.png"
    image.write_bytes(PNG_1PX)
    log_in(page, live_server_proc.url, "carol")
    page.get_by_label("Model").select_option("fake")
    page.locator("#file-input").set_input_files(str(image))
    error = page.locator("#composer-error")
    expect(error).to_have_text("Fake GPT can't read images. Pick a model with vision, or remove the image.")
    expect(page.locator("#attachments .attach-item")).to_have_count(1)
    before = len(chat_requests(fake_llm))
    ask(page, "what is this?")
    expect(error).to_be_visible()
    expect(page.locator("#attachments .attach-item")).to_have_count(1)  # the image is still there
    expect(page.get_by_label("Message", exact=True)).to_have_value("what is this?")
    assert len(chat_requests(fake_llm)) == before and not Session.objects.exists()
    shot(page, f"20-vision-refused-{size}")
    # A model that can see: the notice goes, and the image is sent.
    page.get_by_label("Model").select_option("eyes")
    expect(error).to_be_hidden()
    fake_llm.script([Reply(content="A dot.")])
    page.get_by_label("Message", exact=True).press("Enter")
    expect(page.locator(".turn .msg-assistant .md").last).to_have_text("A dot.")
    expect(page.locator(".turn .msg-user .msg-attachments img")).to_have_count(1)


def test_error_notices_are_plain_single_and_the_same_after_a_reload(
    page: Page, size: str, live_server_proc: LiveServer, world: dict[str, Any]
) -> None:
    log_in(page, live_server_proc.url, "carol")
    page.get_by_label("Model").select_option("down")
    ask(page, "anyone there?")
    notice = page.locator(".msg-assistant .notice-error")
    expect(notice).to_have_count(1)
    expect(notice.locator(".notice-text")).to_have_text(ERROR_TEXT["model_unavailable"])
    detail = notice.locator(".notice-detail")
    expect(detail.locator("code")).not_to_be_visible()  # the code is one click away
    detail.locator("summary").click()
    expect(detail.locator("code")).to_have_text("model_unavailable")
    live = notice.evaluate("n => [n.querySelector('.notice-text').textContent, n.querySelector('.notice-detail').textContent]")
    assert live[0] not in live[1]  # the sentence is not repeated in the details
    shot(page, f"21-error-{size}")
    page.reload()
    notice = page.locator(".msg-assistant .notice-error")
    expect(notice).to_have_count(1)
    stored = notice.evaluate("n => [n.querySelector('.notice-text').textContent, n.querySelector('.notice-detail').textContent]")
    assert [s.strip() for s in stored] == [s.strip() for s in live]


def test_error_notices_are_keyed_by_code_and_keep_the_servers_message_in_details(
    page: Page, size: str, live_server_proc: LiveServer, world: dict[str, Any], fake_llm: FakeLLMServer
) -> None:
    log_in(page, live_server_proc.url, "carol")
    page.get_by_label("Model").select_option("fake")
    # The model's server fails the run: its own words are in the details, not in the sentence.
    fake_llm.script([Reply(status=500, error_body={"error": {"message": "GPU on fire"}})])
    ask(page, "hello?")
    notice = page.locator(".msg-assistant .notice-error")
    expect(notice).to_have_attribute("data-code", "model_unavailable")
    expect(notice.locator(".notice-text")).to_have_text(ERROR_TEXT["model_unavailable"])
    detail = notice.locator(".notice-detail")
    expect(detail).not_to_have_attribute("open", "")
    detail.locator("summary").click()
    expect(detail.locator("code")).to_have_text("model_unavailable")
    expect(detail).to_contain_text("GPU on fire")
    # The next answer comes in under its own question, the failed turn shown once.
    fake_llm.script([Reply(content="Back again.")])
    ask(page, "and now?")
    expect(page.locator(".turn .msg-assistant .md").last).to_have_text("Back again.")
    expect(page.locator(".msg-user .user-text")).to_have_text(["hello?", "and now?"])
    expect(page.locator(".msg-assistant .notice-error")).to_have_count(1)
    # Refused before the run starts (the model was switched off meanwhile): the composer says
    # so in words of its own code, the question stays in the box.
    model = LLMModel.objects.get(model_id="fake")
    model.enabled = False
    model.save()
    ask(page, "and now?")
    refusal = page.locator("#composer-error")
    expect(refusal.locator(".notice-text")).to_have_text(re.compile("^(" + re.escape(ERROR_TEXT["model_disabled"]) + "|"
                                                                   + re.escape(ERROR_TEXT["model_not_found"]) + ")$"))
    expect(refusal.locator(".notice-detail code")).to_have_text(re.compile("^model_(disabled|not_found)$"))
    expect(page.get_by_label("Message", exact=True)).to_have_value("and now?")
    shot(page, f"24-error-codes-{size}")


def test_rename_search_and_export(page: Page, size: str, live_server_proc: LiveServer, world: dict[str, Any],
                                  fake_llm: FakeLLMServer) -> None:
    base = live_server_proc.url
    log_in(page, base, "carol")
    page.get_by_label("Model").select_option("fake")
    fake_llm.script([Reply(content="Lisbon is lovely."), Reply(content="Zebras are striped.")])
    ask(page, "Tell me about Portugal")
    expect(page.locator(".turn .msg-assistant .md").last).to_have_text("Lisbon is lovely.")
    first = page.locator("#conversation").get_attribute("data-session-id")
    page.locator("#new-chat").click() if size == "desktop" else page.goto(base + "/")
    expect(page.locator(".empty-state")).to_be_visible()  # typed sooner, it would go to the chat still shown
    ask(page, "zebra facts")
    expect(page.locator(".turn .msg-assistant .md").last).to_have_text("Zebras are striped.")

    # Rename the first chat from the list.
    open_chat_list(page, size)
    item = page.locator(f'.session-item[data-session-id="{first}"]')
    item.hover()
    item.get_by_role("button", name=re.compile("^Rename chat")).click()
    field = page.get_by_label("New name of the chat")
    field.fill("Trip planning")
    field.press("Enter")
    expect(item.locator(".session-link")).to_have_text("Trip planning")
    assert Session.objects.get(pk=first).title == "Trip planning"

    # Search: by message text, then by title.
    search = page.get_by_label("Search chats")
    search.fill("lisbon")
    expect(page.locator(".session-link")).to_have_count(1)
    expect(page.locator(".session-link")).to_have_text("Trip planning")
    search.fill("nothing like this")
    expect(page.locator(".session-empty")).to_have_text("No chats match “nothing like this”.")
    search.fill("")
    expect(page.locator(".session-link")).to_have_count(2)
    shot(page, f"22-search-{size}")

    # Export the open chat.
    page.keyboard.press("Escape")
    page.locator(".export-menu summary").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Markdown (.md)").click()
    text = open(download.value.path(), encoding="utf-8").read()
    assert text.startswith("# zebra facts") and "Zebras are striped." in text
    with page.expect_download() as download:
        page.get_by_role("link", name="JSON (.json)").click()
    data = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]


def test_regenerate_edit_copy_usage_and_the_remembered_model(
    page: Page, size: str, live_server_proc: LiveServer, world: dict[str, Any], fake_llm: FakeLLMServer
) -> None:
    base = live_server_proc.url
    log_in(page, base, "carol")
    page.get_by_label("Model").select_option("eyes")
    fake_llm.script([Reply(content="First **answer**."), Reply(content="Second answer."), Reply(content="Edited answer.")])
    ask(page, "Question one")
    answer = page.locator(".turn .msg-assistant").last
    expect(answer.locator(".md")).to_have_text("First answer.")

    # Usage of the run under the answer, totals in the chat's head.
    expect(answer.locator(".run-usage")).to_have_text(re.compile(r"^\d[\d,]* tokens · \d+\.\d s$"))
    sid = page.locator("#conversation").get_attribute("data-session-id")
    session = Session.objects.get(pk=sid)
    expect(page.locator("#conv-usage")).to_have_text(f"{session.total_tokens} tokens")
    first_total = session.total_tokens

    # Copy the whole answer: its Markdown source.
    answer.get_by_role("button", name="Copy", exact=True).click()
    expect(answer.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "First **answer**."

    # Regenerate: the answer is replaced, the old one kept in storage as superseded.
    answer.get_by_role("button", name="Regenerate").click()
    expect(page.locator(".msg-assistant .md")).to_have_text(["Second answer."])
    assert [m.superseded for m in SessionMessage.objects.filter(session_id=sid).order_by("seq")] == [False, True, False]
    # The new run has its own usage line, and the head's total counts both runs.
    expect(page.locator(".turn .msg-assistant .run-usage")).to_have_count(1)
    session.refresh_from_db()
    expect(page.locator("#conv-usage")).to_have_text(f"{session.total_tokens} tokens")
    assert session.total_tokens > first_total

    # Edit the question and send it again.
    question = page.locator(".msg-user").first
    question.hover()
    question.get_by_role("button", name="Edit this message and send it again").click()
    editor = page.get_by_label("Edit your message")
    expect(editor).to_have_value("Question one")
    editor.fill("Question one, better")
    page.get_by_role("button", name="Save & send").click()
    expect(page.locator(".msg-assistant .md")).to_have_text(["Edited answer."])
    expect(page.locator(".msg-user .user-text")).to_have_text(["Question one, better"])
    assert chat_requests(fake_llm)[-1].json["messages"][-1]["content"] == "Question one, better"
    shot(page, f"23-edited-{size}")

    # After a reload the page shows the same conversation.
    page.reload()
    expect(page.locator(".msg-user .user-text")).to_have_text(["Question one, better"])
    expect(page.locator(".msg-assistant .md")).to_have_text(["Edited answer."])

    # A new chat starts on the model used last, not the first one by id.
    page.goto(base + "/")
    expect(page.get_by_label("Model")).to_have_value("eyes")
