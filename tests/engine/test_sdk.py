"""The engine as a plain Python SDK: in-memory registries, no database, both protocols."""

from __future__ import annotations

import pytest

from inference.engine import ModelRegistry, Runtime, TemplateRegistry, ToolRegistry
from inference.engine.errors import InvalidArguments, ModelNotFound, TemplateVariablesMissing, ToolNotFound
from inference.engine.tools.functions import tool
from inference.engine.types import InferenceRequest, Message, ModelConfig
from tests.fakes.fake_llm import FakeLLMServer, Reply


@tool
def get_weather(city: str, unit: str = "celsius") -> dict:
    """Get the current weather for a city.

    Args:
        city: the city name
        unit: celsius or fahrenheit
    """
    return {"city": city, "temp": 21.5, "unit": unit}


@tool(name="shout")
async def shout_text(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@pytest.fixture(params=["openai", "ollama"])
def runtime(request, fake_llm: FakeLLMServer) -> Runtime:
    base = fake_llm.openai_base if request.param == "openai" else fake_llm.ollama_base
    models = ModelRegistry([ModelConfig(model_id="local", api_protocol=request.param, api_base=base, model_name="m")])
    return Runtime(models, ToolRegistry([get_weather, shout_text]), TemplateRegistry({"greet": "Say hello to {{name}}."}))


def test_the_decorator_derives_a_schema_from_the_signature_and_docstring() -> None:
    config = get_weather.__agentsite_tool__
    assert config.description == "Get the current weather for a city."
    assert config.parameters == {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "the city name"},
                       "unit": {"type": "string", "description": "celsius or fahrenheit", "default": "celsius"}},
        "required": ["city"],
    }
    assert get_weather("Oslo")["city"] == "Oslo"  # still a plain function


def test_example_1_function_tool_with_the_sdk(runtime: Runtime, fake_llm: FakeLLMServer) -> None:
    fake_llm.script(
        [Reply(tool_calls=[("get_weather", {"city": "Oslo"}), ("shout", {"text": "hi"})]), Reply(content="21.5 in Oslo")]
    )
    result = runtime.infer(InferenceRequest.of("local", "Weather in Oslo?", tool_ids=["get_weather", "shout"]))
    assert result.content == "21.5 in Oslo" and result.tool_rounds == 1
    tools = [m for m in result.messages if m.role == "tool"]
    assert '"temp": 21.5' in tools[0].text() and tools[1].text() == "HI"


def test_example_4_streaming_with_a_template(runtime: Runtime, fake_llm: FakeLLMServer) -> None:
    fake_llm.script([Reply(content="Hello, Ada!", thinking="greeting", chunk_size=3)])
    request = InferenceRequest("local", (Message(role="user", prompt_template="greet", arguments={"name": "Ada"}),))
    events = list(runtime.infer_stream(request))
    text = "".join(e.data.get("content", "") for e in events if e.event == "delta")
    assert text == "Hello, Ada!" and events[-1].event == "done" and events[-1].data["content"] == text
    assert fake_llm.last_request().json["messages"][0]["content"] == "Say hello to Ada."


def test_sdk_errors(runtime: Runtime) -> None:
    with pytest.raises(ModelNotFound):
        runtime.infer(InferenceRequest.of("nope", "x"))
    with pytest.raises(ToolNotFound):
        runtime.infer(InferenceRequest.of("local", "x", tool_ids=["nope"]))
    with pytest.raises(TemplateVariablesMissing):
        runtime.infer(InferenceRequest("local", (Message(role="user", prompt_template="greet", arguments={}),)))
    with pytest.raises(InvalidArguments):
        runtime.call_tool("get_weather", {"town": "x"})


def test_direct_tool_calls_without_a_model(runtime: Runtime) -> None:
    result = runtime.call_tool("get_weather", {"city": "Paris", "unit": "fahrenheit"})
    assert result.is_error is False and result.structured == {"city": "Paris", "temp": 21.5, "unit": "fahrenheit"}


async def test_streamed_calls_hand_their_connection_back_to_the_pool(runtime: Runtime, fake_llm: FakeLLMServer) -> None:
    """A stream read only up to its end marker ([DONE], "done": true) left its connection unusable:
    each streamed call opened a new one (a handshake on the run's path, a TIME_WAIT socket left)."""
    for _ in range(4):
        fake_llm.script([Reply(content="one two three four five")])
        events = [e.event async for e in runtime.astream(InferenceRequest.of("local", "Hi"))]
        assert events[-1] == "done"
    ports = {r.client_port for r in fake_llm.requests}
    assert len(fake_llm.requests) == 4 and len(ports) == 1, ports
