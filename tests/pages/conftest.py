from __future__ import annotations

import pytest
from django.test import Client

from sessions.models import Session, SessionMessage
from tests.factories import LLMModelFactory, ToolFactory


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def staff_client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def chat_setup(db):
    LLMModelFactory(model_id="m1", model_name="m1", display_name="Model One")  # nothing listens on the models' api_base
    LLMModelFactory(model_id="off", model_name="off", enabled=False)
    ToolFactory(tool_id="math.add", description="Add two integers.", parameters={"type": "object", "properties": {}})


@pytest.fixture
def alice_session(alice) -> Session:
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
