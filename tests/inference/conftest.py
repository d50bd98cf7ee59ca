from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from registry.models import LLMModel, Tool
from tests.fakes.fake_llm import FakeLLMServer

PROTOCOLS = ["openai", "ollama"]


@pytest.fixture(params=PROTOCOLS)
def model(request, db, fake_llm: FakeLLMServer) -> LLMModel:  # noqa: ANN001
    """A model on the fake server, once per protocol."""
    protocol = request.param
    base = fake_llm.openai_base if protocol == "openai" else fake_llm.ollama_base
    return LLMModel.objects.create(
        model_id=f"fake-{protocol}", api_protocol=protocol, api_base=base, model_name="fake-model",
        supports_vision=True, supports_audio=True, timeout_s=5,
    )


@pytest.fixture
def adder(db) -> Tool:  # noqa: ANN001
    return Tool.objects.create(
        tool_id="math.add", name="add", description="Add two integers.", callable="tests.tool_fns:add",
        parameters={"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]},
    )


@pytest.fixture
def exploder(db) -> Tool:  # noqa: ANN001
    return Tool.objects.create(tool_id="explode", name="explode", callable="tests.tool_fns:explode",
                               parameters={"type": "object", "properties": {"reason": {"type": "string"}}})


def parse_sse(raw: bytes) -> list[tuple[str, Any]]:
    """A strict reader of our own event stream: (event, data) pairs, pings as ('ping', None)."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        if block.startswith(":"):
            events.append(("ping", None))
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def stream(client, body: dict) -> list[tuple[str, Any]]:  # noqa: ANN001
    res = client.post("/v1/infer/stream", body, format="json")
    assert res.status_code == 200, res.content
    assert res["Content-Type"] == "text/event-stream" and res["X-Accel-Buffering"] == "no"
    return parse_sse(async_to_sync(_collect)(res.streaming_content))


async def _collect(chunks) -> bytes:  # noqa: ANN001
    return b"".join([c async for c in chunks])


def sent_messages(fake: FakeLLMServer, index: int = -1) -> list[dict]:
    chat = [r for r in fake.requests if r.path in ("/v1/chat/completions", "/api/chat")]
    return chat[index].json["messages"]
