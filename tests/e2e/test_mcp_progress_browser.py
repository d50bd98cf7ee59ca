"""The chat's tool card shows an MCP tool's progress as a bar while the call runs (docs/mcp.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from registry import mcp_services
from tests.e2e.conftest import LiveServer
from tests.e2e.test_browser import log_in, page, world  # noqa: F401  (fixtures; skips without Playwright)
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.mcp_servers import PROD_MODULE, REPO

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("mcp")]


def test_a_tool_reporting_progress_shows_a_bar_on_its_card(
    page: Page, live_server_proc: LiveServer, world: dict[str, Any], fake_llm: FakeLLMServer, tmp_path: Path  # noqa: F811
) -> None:
    config = {"command": sys.executable, "args": ["-m", PROD_MODULE], "cwd": str(REPO),
              "env": {"PROD_COUNT_DIR": str(tmp_path)}}
    outcome = mcp_services.mcp_register(servers={"prod": config})
    assert outcome["servers"]["prod"]["status"] == "connected", outcome
    base = live_server_proc.url
    log_in(page, base, "carol")
    page.get_by_label("Model", exact=True).select_option("fake")
    page.locator("#tool-picker summary").click()
    page.locator('input[name="tool_ids"][value="prod.slow_progress"]').check()
    page.keyboard.press("Escape")

    fake_llm.script([Reply(tool_calls=[("prod_slow_progress", {"steps": 8, "delay": 0.5})]), Reply(content="All done.")])
    prompt = page.get_by_label("Message", exact=True)
    prompt.fill("Run the long job")
    prompt.press("Enter")

    bar = page.locator(".tool-card progress.tool-progress")
    expect(bar).to_be_visible()
    expect(bar).to_have_attribute("max", "8")
    expect(page.locator(".tool-card .tool-status")).to_contain_text("step")
    # the bar goes once the result is in
    expect(page.locator(".tool-card[data-state=ok] .tool-result")).to_have_text("finished", timeout=15_000)
    expect(bar).to_have_count(0)
