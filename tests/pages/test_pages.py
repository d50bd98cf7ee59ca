"""The chat pages through Django's test client: access, shapes (page vs partial), rendering."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from core.http import CONTENT_SECURITY_POLICY
from sessions.models import Session, SessionMessage
from templates_app.services import template_create

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


# ---- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/", "/c/s_whatever/", "/sidebar/", "/templates/fields/", "/c/s_x/messages/"])
def test_pages_require_login(client: Client, url: str) -> None:
    res = client.get(url)
    assert res.status_code == 302 and res["Location"].startswith("/login/?next=")


def test_the_login_page_renders_and_logs_in(client: Client, alice) -> None:
    res = client.get("/login/")
    assert res.status_code == 200 and b'name="password"' in res.content
    assert res["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    res = client.post("/login/", {"username": "alice", "password": "alice-pass-123"})
    assert res.status_code == 302 and res["Location"] == "/"
    assert client.get("/").status_code == 200


def test_a_wrong_password_is_shown_in_place(client: Client, alice) -> None:
    res = client.post("/login/", {"username": "alice", "password": "nope"})
    assert res.status_code == 200 and b"didn't match" in res.content


def test_logout_is_a_post(alice_client: Client) -> None:
    res = alice_client.post("/logout/")
    assert res.status_code == 302 and res["Location"] == "/login/"
    assert alice_client.get("/").status_code == 302


def test_another_users_session_is_not_found(alice_session: Session, bob) -> None:
    client = Client()
    client.force_login(bob)
    for url in (f"/c/{alice_session.pk}/", f"/c/{alice_session.pk}/messages/"):
        assert client.get(url).status_code == 404
    assert client.post(f"/c/{alice_session.pk}/delete/").status_code == 404
    assert Session.objects.filter(pk=alice_session.pk).exists()


# ---- page vs partial ----------------------------------------------------------------------------


def test_the_chat_page_is_a_whole_page_with_csp(alice_client: Client, chat_setup) -> None:
    res = alice_client.get("/")
    html = res.content.decode()
    assert res.status_code == 200 and html.startswith("<!doctype html>")
    assert res["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "HX-Request" in res["Vary"]
    assert "/static/vendor/htmx.min.js" in html and "/static/chat.js" in html
    # no inline scripts or styles: the CSP would block them
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and "<style" not in html and " style=" not in html
    assert 'value="m1"' in html and "Model One" in html and 'value="off"' not in html  # enabled models only
    assert 'value="math.add"' in html and "Add two integers." in html and "Functions" in html
    assert 'id="conversation"' in html and 'id="session-list"' in html


def test_a_session_is_a_whole_page_or_the_conversation_partial(alice_client: Client, alice_session: Session, chat_setup) -> None:
    url = f"/c/{alice_session.pk}/"
    full = alice_client.get(url)
    assert full.status_code == 200 and b"<html" in full.content and "HX-Request" in full["Vary"]
    partial = alice_client.get(url, **HX)
    html = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in html and "HX-Request" in partial["Vary"]
    assert f'data-session-id="{alice_session.pk}"' in html
    assert 'id="session-list" class="session-list" hx-swap-oob="true"' in html  # the sidebar follows out of band
    assert "<title>Adding numbers · agentsite</title>" in html
    assert partial["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_a_history_restore_gets_the_whole_page(alice_client: Client, alice_session: Session) -> None:
    res = alice_client.get(f"/c/{alice_session.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert b"<html" in res.content


def test_the_current_session_is_marked_in_the_sidebar(alice_client: Client, alice_session: Session) -> None:
    html = alice_client.get(f"/c/{alice_session.pk}/").content.decode()
    assert re.search(rf'data-session-id="{alice_session.pk}"\s+aria-current="page"', html)


def test_sessions_are_listed_newest_first(alice_client: Client, alice) -> None:
    Session.objects.create(owner=alice, title="older")
    Session.objects.create(owner=alice, title="newer")
    html = alice_client.get("/sidebar/").content.decode()
    assert html.index("newer") < html.index("older")


# ---- stored history -------------------------------------------------------------------------------


def test_stored_messages_render_sanitized_with_tool_cards(alice_client: Client, alice_session: Session) -> None:
    html = alice_client.get(f"/c/{alice_session.pk}/", **HX).content.decode()
    assert "<strong>5</strong>" in html  # Markdown rendered
    assert "<script>alert" not in html and "&lt;script&gt;alert('x')&lt;/script&gt;" in html
    assert "What is 2+3? &lt;b&gt;bold?&lt;/b&gt;" in html  # user text escaped, not rendered
    assert 'class="tool-card" data-state="ok" data-call-id="call_1"' in html
    assert "&quot;a&quot;: 2" in html and '<pre class="tool-result">5</pre>' in html and "2 ms" in html
    assert '<details class="thinking"><summary>Thinking</summary>' in html and "I should call add." in html
    assert '<span class="nb">print</span>' in html  # highlighted code


def test_a_failed_tool_and_a_stopped_answer_are_marked(alice_client: Client, alice) -> None:
    session = Session.objects.create(owner=alice, title="t", message_count=4)
    SessionMessage.objects.create(session=session, seq=0, role="user", content="go")
    SessionMessage.objects.create(session=session, seq=1, role="assistant",
                                  tool_calls=[{"id": "c1", "tool_id": "explode", "name": "explode", "arguments": {}}])
    SessionMessage.objects.create(session=session, seq=2, role="tool", tool_call_id="c1", tool_id="explode",
                                  content=[{"type": "text", "text": "RuntimeError: boom"}], is_error=True)
    SessionMessage.objects.create(session=session, seq=3, role="assistant", content="partial", incomplete=True)
    html = alice_client.get(f"/c/{session.pk}/", **HX).content.decode()
    assert 'data-state="error"' in html and "RuntimeError: boom" in html
    assert "Stopped · partial answer kept" in html


def test_an_error_stored_with_a_message_is_shown_in_place(alice_client: Client, alice) -> None:
    session = Session.objects.create(owner=alice, title="t", message_count=2)
    SessionMessage.objects.create(session=session, seq=0, role="user", content="go")
    SessionMessage.objects.create(session=session, seq=1, role="assistant", content="", incomplete=True,
                                  error={"code": "model_unavailable", "message": "Connection refused <x>"})
    html = alice_client.get(f"/c/{session.pk}/", **HX).content.decode()
    assert "model_unavailable" in html and "Connection refused &lt;x&gt;" in html


def test_the_messages_partial_renders_one_turn(alice_client: Client, alice_session: Session) -> None:
    res = alice_client.get(f"/c/{alice_session.pk}/messages/?from_seq=1")
    html = res.content.decode()
    assert res.status_code == 200 and "<html" not in html
    assert 'data-next-seq="4"' in html and "What is 2+3?" not in html and "<strong>5</strong>" in html
    assert res["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_a_bad_from_seq_is_harmless(alice_client: Client, alice_session: Session) -> None:
    assert alice_client.get(f"/c/{alice_session.pk}/messages/?from_seq=x").status_code == 200


# ---- delete, templates, attachments ------------------------------------------------------------------


def test_deleting_another_chat_returns_the_list(alice_client: Client, alice_session: Session, alice) -> None:
    other = Session.objects.create(owner=alice, title="keep me")
    res = alice_client.post(f"/c/{alice_session.pk}/delete/", HTTP_HX_CURRENT_URL=f"http://testserver/c/{other.pk}/", **HX)
    html = res.content.decode()
    assert res.status_code == 200 and 'id="session-list"' in html and "keep me" in html and "Adding numbers" not in html
    assert not Session.objects.filter(pk=alice_session.pk).exists()


def test_deleting_the_open_chat_moves_to_a_new_chat(alice_client: Client, alice_session: Session) -> None:
    res = alice_client.post(
        f"/c/{alice_session.pk}/delete/", HTTP_HX_CURRENT_URL=f"http://testserver/c/{alice_session.pk}/", **HX
    )
    assert res.status_code == 200 and '"path": "/"' in res["HX-Location"] and "#conversation" in res["HX-Location"]


def test_deleting_without_htmx_redirects(alice_client: Client, alice_session: Session) -> None:
    res = alice_client.post(f"/c/{alice_session.pk}/delete/")
    assert res.status_code == 302 and res["Location"] == "/"


def test_delete_needs_post(alice_client: Client, alice_session: Session) -> None:
    assert alice_client.get(f"/c/{alice_session.pk}/delete/").status_code == 405


def test_the_template_form_has_one_field_per_variable(alice_client: Client) -> None:
    tpl = template_create(
        name="summarize", content="Summarize in {{language}}:\n\n{{ text }} ({{language}})", description="Short <summary>"
    )
    html = alice_client.get(f"/templates/fields/?prompt_template={tpl.pk}").content.decode()
    assert html.count("data-var=") == 2 and 'data-var="language"' in html and 'data-var="text"' in html
    assert 'data-template="summarize"' in html and "Short &lt;summary&gt;" in html
    assert alice_client.get("/templates/fields/?prompt_template=summarize").content.decode().count("data-var=") == 2
    assert alice_client.get("/templates/fields/?prompt_template=").content.strip() == b""
    assert alice_client.get("/templates/fields/?prompt_template=nope").content.strip() == b""


def test_attachments_are_served_to_their_owner_only(alice_client: Client, alice_session: Session, bob) -> None:
    from sessions.services import session_dir

    folder = session_dir(alice_session.pk)
    folder.mkdir(parents=True, exist_ok=True)
    name = "0123456789abcdef01234567.png"
    (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    try:
        res = alice_client.get(f"/c/{alice_session.pk}/files/{name}")
        assert res.status_code == 200 and b"".join(res.streaming_content).startswith(b"\x89PNG")
        assert alice_client.get(f"/c/{alice_session.pk}/files/..%2Fsecret").status_code == 404
        other = Client()
        other.force_login(bob)
        assert other.get(f"/c/{alice_session.pk}/files/{name}").status_code == 404
    finally:
        (folder / name).unlink()


def test_staff_see_admin_links_and_others_do_not(alice_client: Client, staff_client: Client, chat_setup) -> None:
    assert b'id="admin-link"' not in alice_client.get("/").content
    html = staff_client.get("/").content.decode()
    assert 'id="admin-link" href="/admin/"' in html.replace("\n", " ") or 'href="/admin/" id="admin-link"' in html
    assert "/admin/registry/llmmodel/" in html


def test_without_models_the_page_says_so(alice_client: Client) -> None:
    html = alice_client.get("/").content.decode()
    assert "No model is registered yet." in html and 'id="send-btn"' in html


def test_the_theme_cookie_is_rendered(alice_client: Client) -> None:
    alice_client.cookies["theme"] = "dark"
    assert b'<html lang="en" data-theme="dark">' in alice_client.get("/").content
    alice_client.cookies["theme"] = '"><script>'
    assert b'<html lang="en">' in alice_client.get("/").content
