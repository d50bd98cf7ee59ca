from __future__ import annotations

from typing import Any

import pytest

from registry.models import LLMModel, Tool
from tests.factories import ADD_PARAMS, EXPLODE_PARAMS, LLMModelFactory, ToolFactory
from tests.fakes.fake_llm import FakeLLMServer
from tests.sse import parse_sse, streamed_body

PROTOCOLS = ["openai", "ollama"]


@pytest.fixture(params=PROTOCOLS)
def model(request, db, fake_llm: FakeLLMServer) -> LLMModel:
    """A model on the fake server, once per protocol."""
    protocol = request.param
    return LLMModelFactory(model_id=f"fake-{protocol}", api_protocol=protocol, fake=fake_llm,
                           supports_vision=True, supports_audio=True, timeout_s=5)


@pytest.fixture
def adder(db) -> Tool:
    return ToolFactory(tool_id="math.add", description="Add two integers.", parameters=ADD_PARAMS)


@pytest.fixture
def exploder(db) -> Tool:
    return ToolFactory(tool_id="explode", parameters=EXPLODE_PARAMS)


def stream(client, body: dict) -> list[tuple[str, Any]]:
    res = client.post("/v1/infer/stream", body, format="json")
    assert res.status_code == 200, res.content
    assert res["Content-Type"] == "text/event-stream" and res["X-Accel-Buffering"] == "no"
    return parse_sse(streamed_body(res))


def sent_messages(fake: FakeLLMServer, index: int = -1) -> list[dict]:
    chat = [r for r in fake.requests if r.path in ("/v1/chat/completions", "/api/chat")]
    return chat[index].json["messages"]
