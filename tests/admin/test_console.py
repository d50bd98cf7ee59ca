"""The admin console: MCP actions, skill upload and preview, read-only sessions, masked secrets."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse

from registry.models import EnvVar, MCPServer, Skill, Tool
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


def test_allow_sampling_is_a_box_stored_in_the_config(admin_client) -> None:
    config = json.dumps(TIME_STDIO)
    admin_client.post("/admin/registry/mcpserver/add/", {"name": "time", "config": config, "sampling": "on"}, follow=True)
    server = MCPServer.objects.get(name="time")
    assert server.config["sampling"] is True and server.status == "connected"
    page = admin_client.get(f"/admin/registry/mcpserver/{server.pk}/change/")
    assert re.search(rb'<input type="checkbox" name="sampling"[^>]* checked', page.content)
    # unticked: the key goes, whatever the JSON said
    change = json.dumps({**TIME_STDIO, "sampling": True})
    prefix = re.search(rb'name="([\w-]+)-TOTAL_FORMS"', page.content).group(1).decode()  # the tools inline
    inline = {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}
    admin_client.post(f"/admin/registry/mcpserver/{server.pk}/change/", {"config": change, **inline}, follow=True)
    server.refresh_from_db()
    assert "sampling" not in server.config


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


def test_a_skill_page_with_nothing_to_change_offers_no_save(client, admin_client, django_user_model) -> None:
    from django.contrib.auth.models import Group, Permission

    skill = Skill.objects.create(name="tiny", description="Do tiny things", path="/nonexistent")
    url = reverse("admin:registry_skill_change", args=[skill.pk])

    def buttons(user) -> tuple[bool, bool]:
        client.force_login(user)
        html = client.get(url).content.decode()
        return 'name="_save"' in html, 'name="_continue"' in html

    viewer = django_user_model.objects.create_user("viewer", password="pw-123456789", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_skill"))
    assert buttons(viewer) == (False, False)
    # Allowed to change, but with no group to pick every field is read-only.
    editor = django_user_model.objects.create_user("editor", password="pw-123456789", is_staff=True)
    editor.user_permissions.add(*Permission.objects.filter(codename__in=["view_skill", "change_skill"]))
    assert buttons(editor) == (False, False)
    # A group to pick: the picker is an input, and saving it works.
    group = Group.objects.create(name="research")
    assert buttons(editor) == (True, True)
    res = client.post(url, {"allowed_groups": [group.pk], "_save": "Save"})
    assert res.status_code == 302 and list(skill.allowed_groups.all()) == [group]


def test_ids_read_as_written(admin_client, alice) -> None:
    from django.utils import timezone

    from agents.models import Agent
    from tests.factories import LLMModelFactory, ToolFactory
    from usage.models import UsageRecord

    LLMModelFactory(model_id="m1")
    ToolFactory(tool_id="math.add")
    agent = Agent.objects.create(name="helper", model_id="m1", tool_ids=["math.add"])
    session = Session.objects.create(owner=alice, title="hello", model_id="m1")
    record = UsageRecord.objects.create(user=alice, model_id="m1", session_id=session.pk, at=timezone.now())
    pages = {
        "/admin/registry/llmmodel/": ["<code>model_id</code></a>", ">API base</a>", ">API protocol</a>", "By API protocol"],
        "/admin/registry/llmmodel/add/": ["><code>model_id</code>:</label>"],
        "/admin/registry/tool/": ["<code>tool_id</code></a>"],
        "/admin/registry/tool/add/": ["><code>tool_id</code>:</label>"],
        f"/admin/agents/agent/{agent.pk}/change/": ["><code>model_id</code>:</label>", "><code>tool_ids</code>:</label>"],
        "/admin/chat/session/": ["<code>model_id</code></a>", "By <code>model_id</code>"],
        reverse("admin:chat_session_change", args=[quote(session.pk)]): ["><code>id</code>:</label>",
                                                                         "><code>model_id</code>:</label>"],
        "/admin/usage/usagerecord/": ["<code>session_id</code></a>", "<code>api_key_id</code></a>", "By <code>model_id</code>"],
        f"/admin/usage/usagerecord/{record.pk}/change/": ["><code>model_id</code>:</label>"],
    }
    for url, wanted in pages.items():
        html = admin_client.get(url).content.decode()
        assert all(w in html for w in wanted), (url, [w for w in wanted if w not in html])
        assert not re.search(r"\b(Model|Tool|Session|Api key) ids?\b|Api (base|protocol)", html), url
    server = MCPServer.objects.create(name="time", config=TIME_STDIO)
    Tool.objects.create(tool_id="time.now", tool_type="mcp", name="now", server=server, remote_name="now")
    inline = admin_client.get(f"/admin/registry/mcpserver/{server.pk}/change/").content.decode()
    assert "<code>tool_id</code>" in inline and "Tool id" not in inline


def test_no_breadcrumb_repeats_a_crumb(admin_client, alice) -> None:
    from django.contrib import admin

    from agents.models import Agent
    from templates_app.services import template_create

    Agent.objects.create(name="helper", model_id="m1")
    template_create(name="greet", content="Hi {{name}}")
    Session.objects.create(owner=alice, title="hello")
    Skill.objects.create(name="tiny", description="d", path="/nonexistent")
    urls = ["/admin/bus/", "/admin/registry/llmmodel/detect/", "/admin/registry/skill/upload/"]
    for model in admin.site._registry:
        info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls += [reverse(f"{info}_changelist"), reverse(f"{info}_add")]
        if obj := model.objects.first():
            urls += [reverse(f"{info}_{page}", args=[quote(obj.pk)]) for page in ("change", "history", "delete")]
    seen = 0
    for url in urls:
        res = admin_client.get(url)
        if res.status_code != 200:  # pages nobody may open (adding a session, a usage record)
            continue
        trail = re.search(r'<div class="breadcrumbs">(.*?)</div>', res.content.decode(), re.S)
        assert trail, url
        crumbs = [" ".join(c.split()) for c in re.sub(r"<[^>]+>", "", trail.group(1)).replace("&rsaquo;", "›").split("›")]
        assert crumbs[0] == "Home" and all(a != b for a, b in itertools.pairwise(crumbs)), (url, crumbs)
        seen += 1
    assert seen > 40
    agents = admin_client.get("/admin/agents/agent/").content.decode()
    assert re.search(r'<div class="breadcrumbs">\s*<a href="/admin/">Home</a>\s*&rsaquo; Agents\s*</div>', agents)
    upload = admin_client.get("/admin/registry/skill/upload/").content.decode()
    assert ">Registry</a> › <a href=\"/admin/registry/skill/\">Skills</a> › Upload" in upload


def test_storing_a_restart_only_server_setting_as_an_env_value_says_it_needs_a_restart(admin_client) -> None:
    res = admin_client.post("/admin/registry/envvar/add/", {"key": "AGENTSITE_BASH_ENABLED", "value": "1"}, follow=True)
    assert "AGENTSITE_BASH_ENABLED is stored for ${AGENTSITE_BASH_ENABLED} references only" in res.content.decode()
    res = admin_client.post("/admin/registry/envvar/add/", {"key": "REGION", "value": "eu"}, follow=True)
    assert res.status_code == 200 and "references only" not in res.content.decode()


def test_a_live_server_setting_stored_in_the_admin_applies_at_once_and_a_bad_value_is_refused(admin_client) -> None:
    res = admin_client.post("/admin/registry/envvar/add/", {"key": "AGENTSITE_TOOL_TIMEOUT_S", "value": "5"}, follow=True)
    page = res.content.decode()
    assert "AGENTSITE_TOOL_TIMEOUT_S applies at once" in page and "references only" not in page
    res = admin_client.post("/admin/registry/envvar/add/", {"key": "AGENTSITE_MAX_TOOL_ROUNDS_LIMIT", "value": "many"})
    assert res.status_code == 200  # the form again, with the error: nothing stored
    assert "AGENTSITE_MAX_TOOL_ROUNDS_LIMIT must be a whole number" in res.content.decode()
    assert not EnvVar.objects.filter(key="AGENTSITE_MAX_TOOL_ROUNDS_LIMIT").exists()
