from __future__ import annotations

import pytest
from django.test import Client

from registry.models import LLMModel, Tool
from sessions.models import Session, SessionMessage


@pytest.fixture
def alice_client(alice) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def staff_client(staff_user) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def chat_setup(db):  # noqa: ANN001, ANN201
    LLMModel.objects.create(model_id="m1", api_protocol="openai", api_base="http://127.0.0.1:9/v1", model_name="m1", display_name="Model One")
    LLMModel.objects.create(model_id="off", api_protocol="openai", api_base="http://127.0.0.1:9/v1", model_name="off", enabled=False)
    Tool.objects.create(tool_id="math.add", name="add", description="Add two integers.", callable="tests.tool_fns:add",
                        parameters={"type": "object", "properties": {}})


@pytest.fixture
def alice_session(alice) -> Session:  # noqa: ANN001
    """A stored turn with a tool call, a result, thinking and hostile Markdown."""
    session = Session.objects.create(owner=alice, title="Adding numbers", model_id="m1", message_count=4)
    SessionMessage.objects.create(session=session, seq=0, role="user", content="What is 2+3? <b>bold?</b>")
    SessionMessage.objects.create(
        session=session, seq=1, role="assistant", content="", thinking="I should call add.",
        tool_calls=[{"id": "call_1", "tool_id": "math.add", "name": "add", "arguments": {"a": 2, "b": 3}}],
    )
    SessionMessage.objects.create(session=session, seq=2, role="tool", tool_call_id="call_1", tool_id="math.add", tool_name="add",
                                  content=[{"type": "text", "text": "5"}], duration_ms=1.5)
    SessionMessage.objects.create(
        session=session, seq=3, role="assistant",
        content="The answer is **5**.\n\n<script>alert('x')</script>\n\n```python\nprint(5)\n```",
    )
    return session
