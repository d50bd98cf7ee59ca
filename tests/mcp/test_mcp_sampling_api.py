"""MCP sampling and elicitation through HTTP (docs/mcp.md): a server that staff opted in asks the
model of the run that called its tool, in either protocol era, counted as that run's usage;
everything else is refused at once, never left waiting."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from registry.models import LLMModel
from tests.factories import LLMModelFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.mcp_servers import EVERYTHING_BIN, PROD_MODULE, REPO, free_port, start_prod_server, stop
from usage.models import UsageRecord

pytestmark = pytest.mark.usefixtures("mcp")


def prod(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": ["-m", PROD_MODULE], "cwd": str(REPO),
            "env": {"PROD_COUNT_DIR": str(tmp_path)}, **extra}


@pytest.fixture
def prod_handshake_url(tmp_path: Path) -> Iterator[str]:
    """The fixture server over streamable HTTP, refusing the newest revision: a handshake-era
    session, where a sampling request arrives on its own and not with the call that made it."""
    port = free_port()
    proc = start_prod_server(port, "--transport", "streamable-http", "--handshake-only", count_dir=str(tmp_path))
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(proc)


@pytest.fixture
def model(db, fake_llm: FakeLLMServer) -> LLMModel:
    return LLMModelFactory(model_id="asked", api_protocol="openai", fake=fake_llm, timeout_s=10)


def register(api: APIClient, servers: dict[str, Any]) -> dict[str, Any]:
    res = api.post("/v1/tools/mcp", {"mcpServers": servers}, format="json")
    assert res.status_code == 200, res.content
    return res.json()["servers"]


def run_with(api: APIClient, model: LLMModel, tool_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run that calls ``tool_id`` once: (its answer, the tool's message)."""
    res = api.post("/v1/infer", {"model_id": model.model_id, "tool_ids": [tool_id], "text": "go"}, format="json")
    assert res.status_code == 200, res.content
    body = res.json()
    tool_message = next(m for m in body["messages"] if m["role"] == "tool")
    return body, tool_message


def text_of(message: dict[str, Any]) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(c.get("text", "") for c in content)


def chat_requests(fake: FakeLLMServer) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.path == "/v1/chat/completions"]


@pytest.mark.parametrize("era", ["newest (stdio)", "handshake (streamable HTTP)"])
def test_a_server_staff_opted_in_asks_the_runs_model(era: str, model: LLMModel, fake_llm: FakeLLMServer,
                                                     staff_api: APIClient, alice_api: APIClient, alice,
                                                     tmp_path: Path, request) -> None:
    config = prod(tmp_path) if era.startswith("newest") else {"url": request.getfixturevalue("prod_handshake_url")}
    assert register(staff_api, {"prod": {**config, "sampling": True}})["prod"]["status"] == "connected"
    fake_llm.script([Reply(tool_calls=[("prod_ask_model", {"question": "Capital of France?"})]),
                     Reply(content="Paris"), Reply(content="It is Paris.")])
    body, tool_message = run_with(alice_api, model, "prod.ask_model")
    assert text_of(tool_message) == "asked said: Paris" and not tool_message.get("is_error")
    assert body["content"] == "It is Paris."
    # the server's request, as the model got it: its system prompt and question, no tools, its token cap
    sampled = chat_requests(fake_llm)[1]
    assert sampled["messages"] == [{"role": "system", "content": "Answer in one word."},
                                   {"role": "user", "content": "Capital of France?"}]
    assert "tools" not in sampled and sampled["max_tokens"] == 20
    # counted against the run's caller, like the run's own rounds
    assert UsageRecord.objects.filter(user=alice, model_id="asked").count() == 3


def test_sampling_is_refused_unless_opted_in_and_outside_a_run(model: LLMModel, fake_llm: FakeLLMServer,
                                                               staff_api: APIClient, alice_api: APIClient,
                                                               tmp_path: Path) -> None:
    register(staff_api, {"closed": prod(tmp_path), "open": {**prod(tmp_path), "sampling": True}})
    fake_llm.script([Reply(tool_calls=[("closed_ask_model", {"question": "?"})]), Reply(content="no answer")])
    _, tool_message = run_with(alice_api, model, "closed.ask_model")
    assert tool_message["is_error"] and "Sampling not supported" in text_of(tool_message)
    assert len(chat_requests(fake_llm)) == 2  # the model was not asked for the server
    # opted in, but sampling with tools is not offered
    fake_llm.script([Reply(tool_calls=[("open_ask_model", {"question": "?", "offer_tool": True})]),
                     Reply(content="no answer")])
    _, tool_message = run_with(alice_api, model, "open.ask_model")
    assert tool_message["is_error"] and "asked for sampling with tools" in text_of(tool_message)
    assert len(chat_requests(fake_llm)) == 4
    # a direct call has no run, so no model to ask
    res = alice_api.post("/v1/tools/call", {"tool_id": "open.ask_model", "arguments": {"question": "?"}}, format="json")
    assert res.json()["is_error"] and "a direct call has no model" in res.json()["content"][0]["text"]


@pytest.mark.parametrize("era", ["newest (stdio)", "handshake (streamable HTTP)"])
def test_elicitation_is_declined_at_once(era: str, staff_api: APIClient, alice_api: APIClient, tmp_path: Path,
                                         request) -> None:
    config = prod(tmp_path) if era.startswith("newest") else {"url": request.getfixturevalue("prod_handshake_url")}
    register(staff_api, {"prod": {**config, "sampling": True}})
    started = time.monotonic()
    res = alice_api.post("/v1/tools/call", {"tool_id": "prod.ask_user"}, format="json")
    assert res.status_code == 200 and res.json()["is_error"]
    assert "Elicitation not supported" in res.json()["content"][0]["text"]
    assert time.monotonic() - started < 5  # answered, not waiting for a form nobody shows


@pytest.mark.skipif(not EVERYTHING_BIN.exists() and "CI" not in __import__("os").environ,
                    reason="npm ci in tests/mcp_servers installs @modelcontextprotocol/server-everything (.ci/run does)")
def test_the_reference_server_offers_its_sampling_tool_only_to_an_opted_in_client(
    model: LLMModel, fake_llm: FakeLLMServer, staff_api: APIClient, alice_api: APIClient
) -> None:
    everything = {"command": str(EVERYTHING_BIN), "args": ["stdio"]}
    assert "plain.trigger-sampling-request" not in register(staff_api, {"plain": everything})["plain"]["tool_ids"]
    status = register(staff_api, {"sampler": {**everything, "sampling": True}})["sampler"]
    assert "sampler.trigger-sampling-request" in status["tool_ids"]
    fake_llm.script([Reply(tool_calls=[("sampler_trigger-sampling-request", {"prompt": "hello", "maxTokens": 30})]),
                     Reply(content="Hello from the model"), Reply(content="done")])
    _, tool_message = run_with(alice_api, model, "sampler.trigger-sampling-request")
    assert "Hello from the model" in text_of(tool_message) and not tool_message.get("is_error")
