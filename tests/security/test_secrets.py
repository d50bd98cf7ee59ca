"""Secrets never leave the server: not in API responses, admin pages, log lines or error messages.

Registered: a model with a literal api_key, an env var marked secret, MCP servers with a secret env
value and a secret header. Then every list/detail endpoint and admin page is read, and errors that
involve the secrets are triggered (unreachable model with that key, MCP connect failure with the
secret in headers), in-process with every log record captured at DEBUG, and once more through a
real worker whose whole log file is searched.
"""

from __future__ import annotations

import logging
import sys

import httpx
import pytest
from rest_framework.test import APIClient

from registry.models import EnvVar, LLMModel, MCPServer
from tests.e2e.conftest import LiveServer
from tests.factories import StaffFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer
from tests.mcp_servers import free_port
from tests.sse import streamed_body

MODEL_KEY = "sk-LITERALMODELKEY-4b8e2c91d0"
ENV_SECRET = "env-SECRETVALUE-77f1a9c3e2"
MCP_ENV_SECRET = "mcp-ENVSECRET-5d2e8a7b1c"
MCP_HEADER_SECRET = "hdr-HEADERSECRET-9c3b6f0e4a"
SECRETS = [MODEL_KEY, ENV_SECRET, MCP_ENV_SECRET, MCP_HEADER_SECRET]

pytestmark = pytest.mark.usefixtures("mcp")  # servers registered in-process by a test are removed after it


def register_everything(post, dead: int) -> list[tuple[str, str]]:
    """Register the secrets through the API; returns (what, response text) pairs."""
    seen = []
    model = {"model_id": "keyed", "api_protocol": "openai", "api_base": f"http://127.0.0.1:{dead}/v1", "model_name": "m",
             "api_key": MODEL_KEY}
    seen.append(("POST /v1/models", post("/v1/models", model)))
    seen.append(("POST /v1/env", post("/v1/env", {"key": "SEC_REVIEW_TOKEN", "value": ENV_SECRET, "is_secret": True})))
    servers = {"mcpServers": {
        # a stdio server that exits at once: connect failure, with a secret in its env
        "envy": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"], "env": {"TOKEN": MCP_ENV_SECRET}},
        # an HTTP server nobody listens on: connect failure, with a secret in its headers
        "hdr": {"url": f"http://127.0.0.1:{dead}/mcp", "transport": "streamable-http",
                "headers": {"Authorization": f"Bearer {MCP_HEADER_SECRET}", "X-Api-Key": MCP_HEADER_SECRET}},
    }}  # fmt: skip
    seen.append(("POST /v1/tools/mcp", post("/v1/tools/mcp", servers)))
    return seen


def trigger_errors(post, dead: int) -> list[tuple[str, str]]:
    seen = []
    seen.append(("infer unreachable", post("/v1/infer", {"model_id": "keyed", "text": "hi"})))
    seen.append(("stream unreachable", post("/v1/infer/stream", {"model_id": "keyed", "text": "hi"})))
    seen.append(("detect unreachable", post("/v1/models/detect", {"api_protocol": "openai", "api_base": f"http://127.0.0.1:{dead}/v1",
                                                                  "api_key": MODEL_KEY})))
    seen.append(("env detect", post("/v1/env/detect", {})))
    seen.append(("mcp call hdr", post("/v1/tools/call", {"server": "hdr", "tool": "anything", "arguments": {}})))
    seen.append(
        (
            "mcp re-register",
            post(
                "/v1/tools/mcp",
                {
                    "mcpServers": {
                        "hdr": {
                            "url": f"http://127.0.0.1:{dead}/mcp",
                            "transport": "streamable-http",
                            "headers": {"Authorization": f"Bearer {MCP_HEADER_SECRET}"},
                        }
                    }
                },
            ),
        )
    )
    return seen


READS = ["/v1/models", "/v1/models/keyed", "/v1/env", "/v1/tools", "/v1/tools/mcp", "/v1/tools/skill",
         "/v1/sessions", "/v1/prompt-templates"]


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in {where}"
        assert secret[4:-4] not in text, f"part of {secret!r} leaked in {where}"


def test_secrets_stay_out_of_responses_admin_pages_and_logs(staff_user, staff_api: APIClient, alice_api: APIClient,
                                                            client, caplog) -> None:
    caplog.set_level(logging.DEBUG)  # root at DEBUG, as with LOG_LEVEL=DEBUG
    dead = free_port()  # nothing listens there

    def post(path: str, body: dict) -> str:
        res = staff_api.post(path, body, format="json")
        assert res.status_code != 500, (path, res.content)
        return streamed_body(res).decode() if res.streaming else res.content.decode()

    seen = register_everything(post, dead)
    assert '"status":"error"' in seen[-1][1].replace(" ", "")  # both MCP servers failed to connect
    assert EnvVar.objects.get(key="SEC_REVIEW_TOKEN").value == ENV_SECRET  # stored, really
    seen += trigger_errors(post, dead)
    for api in (staff_api, alice_api):
        for path in READS:
            res = api.get(path)
            assert res.status_code in (200, 403), (path, res.status_code)
            seen.append((f"GET {path}", res.content.decode()))

    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    pages = ["/admin/registry/llmmodel/", "/admin/registry/envvar/", "/admin/registry/mcpserver/", "/admin/registry/tool/",
             "/admin/accounts/apikey/"]
    pages += [f"/admin/registry/llmmodel/{LLMModel.objects.get().pk}/change/",
              f"/admin/registry/envvar/{EnvVar.objects.get().pk}/change/"]
    pages += [f"/admin/registry/mcpserver/{s.pk}/change/" for s in MCPServer.objects.all()]
    for page in pages:
        res = client.get(page)
        assert res.status_code == 200, page
        seen.append((page, res.content.decode()))

    for where, text in seen:
        assert_no_secret(where, text)
    for record in caplog.records:
        assert_no_secret(f"log record {record.name}:{record.levelname}", record.getMessage() + str(record.exc_text or ""))
    assert_no_secret("the captured log", caplog.text)


@pytest.mark.e2e
def test_secrets_stay_out_of_a_live_workers_log(transactional_db, fake_llm: FakeLLMServer) -> None:
    headers = bearer(StaffFactory(username="sec"))
    server = LiveServer({"LOG_LEVEL": "DEBUG"})
    dead = free_port()  # nothing listens there
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            def post(path: str, body: dict) -> str:
                res = http.post(path, json=body)
                assert res.status_code != 500, (path, res.text)
                return res.text

            seen = register_everything(post, dead) + trigger_errors(post, dead)
            seen += [(f"GET {p}", http.get(p).text) for p in READS]
            seen.append(("unknown path", http.get("/v1/nope").text))
    finally:
        server.stop()
    for where, text in seen:
        assert_no_secret(where, text)
    log = server.log_path.read_text()
    assert "mcp" in log.lower() or "MCP" in log  # the failures were logged: we searched a real log
    assert_no_secret(f"the worker's log {server.log_path}", log)
