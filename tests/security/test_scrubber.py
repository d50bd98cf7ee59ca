"""Secrets that would leave through error paths are scrubbed: upstream 401/500 bodies echoing the
key, an MCP child printing its secret env value to stderr, a ``${VAR}`` resolved into a URL.

Known secret values are planted in every place they can be configured; every error path is
driven (stateless and in a session, plain and streaming, direct tool call); then every response,
SSE event, stored row (session messages with their ``error``, MCP ``last_error``), admin page and
captured log record is searched for them: zero hits.
"""

from __future__ import annotations

import logging
import sys

import pytest
from django.apps import apps
from django.contrib.admin.utils import quote
from django.urls import reverse
from rest_framework.test import APIClient

from core.secrets import mask, scrub, scrubber
from registry.models import MCPServer
from sessions.models import Session
from tests.factories import StaffFactory, UserFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.mcp_servers import free_port
from tests.sse import streamed_body

MODEL_KEY = "sk-ECHOEDMODELKEY-1f2e3d4c5b"
VAR_KEY = "sk-RESOLVEDVARKEY-6a7b8c9d0e"
URL_PASSWORD = "pw-URLPASSWORD-2c4e6a8b0d"
MCP_ENV = "mcp-STDERRSECRET-3b5d7f9a1c"
SECRETS = [MODEL_KEY, VAR_KEY, URL_PASSWORD, MCP_ENV]

pytestmark = pytest.mark.usefixtures("mcp")


def assert_clean(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text and secret[4:-4] not in text, f"{secret!r} leaked in {where}"


def test_the_scrubber_masks_known_values_and_url_secrets_anywhere(db) -> None:
    assert mask(MODEL_KEY) == "sk-…3d4c5b"[:3] + "…" + MODEL_KEY[-4:]
    text = "see https://bob:hunter2secret@example.org/x?api_key=abcdef123456&page=2 and Bearer abcdefgh12345678"
    out = scrub(text)
    assert "hunter2secret" not in out and "abcdef123456" not in out and "abcdefgh12345678" not in out
    assert "page=2" in out and "https://bob:" in out


def test_no_secret_leaves_through_any_error_path(transactional_db, fake_llm: FakeLLMServer, client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    staff = StaffFactory(username="ops", is_superuser=True)
    alice = UserFactory(username="alice")
    staff_api, alice_api = APIClient(), APIClient()
    staff_api.credentials(HTTP_AUTHORIZATION=bearer(staff)["Authorization"])
    alice_api.credentials(HTTP_AUTHORIZATION=bearer(alice)["Authorization"])
    seen: list[tuple[str, str]] = []

    def keep(where: str, res) -> None:
        assert res.status_code < 500 or res.status_code in (502, 504), (where, res.status_code, res.content)
        seen.append((where, streamed_body(res).decode() if res.streaming else res.content.decode()))

    # plant: a literal key, a key resolved from a secret env var, a password resolved into a URL, MCP env
    dead = free_port()
    keep("env", staff_api.post("/v1/env", {"key": "SCRUB_VAR_KEY", "value": VAR_KEY, "is_secret": True}, format="json"))
    keep("env", staff_api.post("/v1/env", {"key": "SCRUB_URL_PW", "value": URL_PASSWORD, "is_secret": True}, format="json"))
    for model_id, base, key in (
        ("literal", fake_llm.openai_base, MODEL_KEY),
        ("resolved", fake_llm.openai_base, "${SCRUB_VAR_KEY}"),
        ("in-url", f"http://proxy:${{SCRUB_URL_PW}}@127.0.0.1:{dead}/v1", ""),
    ):
        body = {"model_id": model_id, "api_protocol": "openai", "api_base": base, "model_name": "m", "api_key": key,
                "timeout_s": 5}
        keep(f"register {model_id}", staff_api.post("/v1/models", body, format="json"))
    # an MCP child that prints its secret env value to stderr and dies
    noisy = {"command": sys.executable, "args": ["-c", "import os, sys; print('token is', os.environ['TOKEN'], file=sys.stderr); "
                                                       "sys.stderr.flush(); sys.exit(3)"],
             "env": {"TOKEN": MCP_ENV}}
    keep("register mcp", staff_api.post("/v1/tools/mcp", {"mcpServers": {"noisy": noisy}}, format="json"))
    assert MCPServer.objects.get(name="noisy").status == "error"

    # drive every error path, as the owner of the keys (staff) and as a plain user
    for api, who in ((staff_api, "staff"), (alice_api, "alice")):
        for model_id, replies in (
            ("literal", [Reply(status=401, error_body={"error": {"message": f"Incorrect API key provided: {MODEL_KEY}"}})] * 4),
            ("resolved", [Reply(status=500, error_body=f"upstream crashed while checking key {VAR_KEY}")] * 4),
            ("in-url", []),
        ):
            fake_llm.script(replies)
            for path in ("/v1/infer", "/v1/infer/stream"):
                for session in (None, "new"):
                    body = {"model_id": model_id, "text": "hi", **({"session_id": session} if session else {})}
                    keep(f"{who} {path} {model_id} {session}", api.post(path, body, format="json"))
        keep(f"{who} mcp call", api.post("/v1/tools/call", {"server": "noisy", "tool": "x", "arguments": {}}, format="json"))
    # the echo really happened upstream: the error paths were exercised
    assert any("Incorrect API key provided" in text for _, text in seen)
    assert any("upstream crashed" in text for _, text in seen)

    # everything the API shows again
    for api, who in ((staff_api, "staff"), (alice_api, "alice")):
        for path in ("/v1/models", "/v1/env", "/v1/tools/mcp", "/v1/tools/mcp/noisy", "/v1/sessions", "/v1/usage"):
            keep(f"{who} GET {path}", api.get(path))
        for sid in Session.objects.filter(owner__username=who if who == "alice" else "ops").values_list("pk", flat=True):
            keep(f"{who} session {sid}", api.get(f"/v1/sessions/{sid}"))
    assert Session.objects.count() == 12

    # every stored row of the apps that keep what runs produce (the registries hold the secrets
    # themselves, by design: only what a failure wrote there counts)
    for label in ("chat", "usage", "accounts"):
        for model in apps.get_app_config(label).get_models():
            for row in model.objects.values():
                seen.append((f"row {model.__name__}", str(row)))
    seen += [("MCP last_error", error) for error in MCPServer.objects.values_list("last_error", flat=True)]
    assert "token is" in MCPServer.objects.get().last_error  # the child's stderr did reach it

    # admin pages
    client.force_login(staff)
    pages = ["/admin/registry/mcpserver/", f"/admin/registry/mcpserver/{MCPServer.objects.get().pk}/change/",
             "/admin/chat/session/", "/admin/usage/usagerecord/", "/admin/registry/llmmodel/", "/admin/registry/envvar/"]
    # (the admin escapes keys in its URLs: "s_24…" unescaped would read as "s$…")
    pages += [reverse("admin:chat_session_change", args=[quote(sid)]) for sid in Session.objects.values_list("pk", flat=True)]
    for page in pages:
        res = client.get(page)
        assert res.status_code == 200, page
        seen.append((page, res.content.decode()))

    for where, text in seen:
        assert_clean(where, text)
    assert caplog.records
    for record in caplog.records:
        assert_clean(f"log {record.name}", record.getMessage() + str(record.exc_text or ""))
    assert_clean("captured log", caplog.text)


def test_an_authorization_header_makes_its_token_a_secret_not_its_scheme(db) -> None:
    # A header "Bearer <token>" made every word of it a known secret, "Bearer" included: the word
    # was then masked everywhere, and a token the registry never knew, written after it, was no
    # longer recognised as one and left whole.
    MCPServer.objects.create(name="authed", config={"url": "http://127.0.0.1:9/mcp",
                                                    "headers": {"Authorization": "Bearer hdr-KNOWNTOKEN-71c2"}})
    scrubber.refresh()
    out = scrub("sent Bearer unknownTOKEN12345678; the server echoed hdr-KNOWNTOKEN-71c2")
    assert "unknownTOKEN12345678" not in out and "KNOWNTOKEN" not in out
    assert out.startswith("sent Bearer ")
