"""The admin console: MCP actions, skill upload and preview, read-only sessions, masked secrets."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse

from registry.models import MCPServer, Skill, Tool
from sessions.models import Session
from tests.mcp_servers.fixtures import TIME_STDIO
from tests.skills.test_skills_api import GOOD_MD, raw_zip

pytestmark = pytest.mark.usefixtures("mcp")  # servers registered by a test are removed after it


def test_add_an_mcp_server_then_refresh_and_reconnect(admin_client) -> None:
    config = json.dumps({**TIME_STDIO, "env": {"TOKEN": "hidden-token-value"}})
    res = admin_client.post("/admin/registry/mcpserver/add/", {"name": "time", "config": config}, follow=True)
    assert res.status_code == 200
    server = MCPServer.objects.get(name="time")
    assert server.status == "connected" and Tool.objects.filter(server=server).exists()
    page = admin_client.get(f"/admin/registry/mcpserver/{server.pk}/change/")
    assert b"hidden-token-value" not in page.content and b"get_current_time" in page.content
    listing = admin_client.get("/admin/registry/mcpserver/")
    assert b"connected" in listing.content and b"hidden-token-value" not in listing.content
    for action in ("refresh_tools", "reconnect"):
        res = admin_client.post("/admin/registry/mcpserver/", {"action": action, "_selected_action": [server.pk]}, follow=True)
        assert b"connected," in res.content


def test_bad_mcp_config_is_a_form_error(admin_client) -> None:
    res = admin_client.post("/admin/registry/mcpserver/add/", {"name": "x", "config": '{"args": []}'})
    assert res.status_code == 200 and b"command" in res.content and not MCPServer.objects.exists()


def test_upload_a_skill_and_preview_it(admin_client) -> None:
    upload = raw_zip({"SKILL.md": GOOD_MD})
    upload.name = "tiny.zip"
    res = admin_client.post("/admin/registry/skill/upload/", {"file": upload}, follow=True)
    assert res.status_code == 200 and b"Do tiny things" in res.content
    assert Skill.objects.get().name == "tiny"
    bad = raw_zip({"../x": b"1", "SKILL.md": GOOD_MD})
    bad.name = "bad.zip"
    res = admin_client.post("/admin/registry/skill/upload/", {"file": bad})
    assert b"errorlist" in res.content


def test_sessions_are_read_only_transcripts(admin_client, alice) -> None:
    s = Session.objects.create(owner=alice, title="hello")
    s.messages.create(seq=0, role="user", content="hi there")
    page = admin_client.get(reverse("admin:chat_session_change", args=[quote(s.pk)]))
    assert page.status_code == 200 and b"hi there" in page.content
    assert admin_client.get("/admin/chat/session/add/").status_code == 403


def test_the_transcript_is_cards_not_raw_json(admin_client, alice) -> None:
    s = Session.objects.create(owner=alice, title="hello")
    s.messages.create(seq=0, role="user", content="<b>bold?</b>")
    s.messages.create(seq=1, role="assistant", content="", thinking="let me think",
                      tool_calls=[{"id": "c1", "name": "add", "tool_id": "math.add", "arguments": {"a": 2}}])
    s.messages.create(seq=2, role="tool", content=[{"type": "text", "text": "5"}], tool_call_id="c1", tool_id="math.add")
    s.messages.create(seq=3, role="assistant", content="Old", superseded=True)
    html = admin_client.get(reverse("admin:chat_session_change", args=[quote(s.pk)])).content.decode()
    assert html.count('class="transcript-card') == 4
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html and "<b>bold?</b>" not in html  # escaped, never rendered
    assert "<details><summary>Thinking</summary>" in html and "let me think" in html
    assert "Calls <code>math.add</code>" in html and "&quot;a&quot;: 2" in html
    assert 'transcript-card role-assistant is-superseded' in html
    assert "run_token" not in html and "tool_call_id" not in html  # no internal fields


def test_an_mcp_servers_config_is_editable_and_its_secrets_stay_hidden(admin_client) -> None:
    config = {**TIME_STDIO, "env": {"TOKEN": "hidden-token-value", "PLAIN": "x"}}
    admin_client.post("/admin/registry/mcpserver/add/", {"name": "time", "config": json.dumps(config)}, follow=True)
    server = MCPServer.objects.get(name="time")
    page = admin_client.get(f"/admin/registry/mcpserver/{server.pk}/change/").content.decode()
    assert "hidden-token-value" not in page and "hid…alue" in page and 'name="config"' in page
    # Sent back with the masked token and a new plain value: the token is kept, the change saved.
    inline = dict(re.findall(r'<input type="hidden" name="(tools-[^"]+)"(?: value="([^"]*)")?', page))
    edited = {**TIME_STDIO, "env": {"TOKEN": "hid…alue", "PLAIN": "y"}}
    res = admin_client.post(f"/admin/registry/mcpserver/{server.pk}/change/",
                            {**inline, "name": "time", "config": json.dumps(edited)}, follow=True)
    assert res.status_code == 200 and b"errorlist" not in res.content
    server.refresh_from_db()
    assert server.config["env"] == {"TOKEN": "hidden-token-value", "PLAIN": "y"}
    bad = admin_client.post(f"/admin/registry/mcpserver/{server.pk}/change/",
                            {**inline, "name": "time", "config": '["not", "a server"]'})
    assert b"errorlist" in bad.content


def test_the_env_page_shows_a_plain_value_and_masks_a_secret(admin_client) -> None:
    from registry.models import EnvVar

    plain = EnvVar.objects.create(key="REGION", value="eu-west-1", is_secret=False)
    secret = EnvVar.objects.create(key="TOKEN", value="sk-very-secret-1234", is_secret=True)
    assert b'value="eu-west-1"' in admin_client.get(f"/admin/registry/envvar/{plain.pk}/change/").content
    page = admin_client.get(f"/admin/registry/envvar/{secret.pk}/change/").content.decode()
    assert "sk-very-secret-1234" not in page and "sk-…1234 (unchanged)" in page
    admin_client.post(f"/admin/registry/envvar/{secret.pk}/change/", {"key": "TOKEN", "value": "", "is_secret": "on"})
    secret.refresh_from_db()
    assert secret.value == "sk-very-secret-1234"


def test_model_labels_and_protocol_help(admin_client) -> None:
    page = admin_client.get("/admin/registry/llmmodel/add/").content.decode()
    assert ">API base:</label>" in page and ">API key:</label>" in page and "Api base" not in page
    assert "any OpenAI-compatible server" in page and "native API" in page


def test_the_index_shows_health_at_a_glance(admin_client, fake_llm) -> None:
    from tests.factories import LLMModelFactory
    from web import health

    LLMModelFactory(model_id="up", fake=fake_llm)
    LLMModelFactory(model_id="down", api_base="http://127.0.0.1:9/v1")  # the discard port: nothing listens
    MCPServer.objects.create(name="broken", config={"command": "nope"}, status="error", last_error="gone")
    health._cache.clear()
    page = admin_client.get("/admin/").content.decode()
    assert "<b>Model servers</b>: needs attention (1 of 2 reachable; not: http://127.0.0.1:9/v1)" in page
    assert "<b>MCP servers</b>: needs attention (0 of 1 connected; failing: broken)" in page
    assert "<b>bash sandbox</b>: OK (bash is off)" in page
    health._cache.clear()
