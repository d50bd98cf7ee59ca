"""A Python function as a tool, with the engine used as a plain SDK (no Django, no database).

    AGENTSITE_MODEL_BASE=http://127.0.0.1:11434 AGENTSITE_MODEL_PROTOCOL=ollama \
    AGENTSITE_MODEL_NAME=qwen3:14b .venv/bin/python examples/sdk_function_tool.py

``AGENTSITE_MODEL_BASE`` is the server root for ollama, and includes ``/v1`` for openai
(``http://127.0.0.1:8000/v1``). ``AGENTSITE_MODEL_API_KEY`` is sent as the model's API key when set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout

from inference.engine import ModelRegistry, Runtime, ToolRegistry
from inference.engine.tools.functions import tool
from inference.engine.types import InferenceRequest, ModelConfig

PROTOCOL = os.environ.get("AGENTSITE_MODEL_PROTOCOL", "ollama")
BASE = os.environ.get("AGENTSITE_MODEL_BASE", "http://127.0.0.1:11434" if PROTOCOL == "ollama" else "http://127.0.0.1:8000/v1")
NAME = os.environ.get("AGENTSITE_MODEL_NAME", "qwen3:14b")


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: first addend
        b: second addend
    """
    return a + b


def main() -> None:
    model = ModelConfig(
        model_id="example", api_protocol=PROTOCOL, api_base=BASE, model_name=NAME,
        api_key=os.environ.get("AGENTSITE_MODEL_API_KEY") or None,
    )
    runtime = Runtime(ModelRegistry([model]), ToolRegistry([add]))
    print("tool schema:", add.__agentsite_tool__.parameters)

    # 1. Run to the end: the runtime calls the model, runs `add` when asked, calls the model again.
    request = InferenceRequest.of("example", "What is 17 + 25? Use the add tool.", tool_ids=["add"])
    result = runtime.infer(request)
    for m in result.messages:
        if m.tool_calls:
            print("model called:", ", ".join(f"{c.name}({dict(c.arguments)})" for c in m.tool_calls))
        if m.role == "tool":
            print("tool answered:", m.text())
    print(f"answer ({result.finish_reason}, {result.tool_rounds} tool round(s)): {result.content}")

    # 2. The same, streamed: deltas as they come, tool calls and results as events.
    print("\nstreaming:")
    for event in runtime.infer_stream(request):
        if event.event == "delta":
            print(event.data.get("content", ""), end="", flush=True)
        elif event.event == "tool_call":
            print(f"[tool_call {event.data['name']}({event.data['arguments']})]", flush=True)
        elif event.event == "tool_result":
            print(f"[tool_result {event.data['content'][0].get('text')}]", flush=True)
        elif event.event == "done":
            print(f"\n[done: finish_reason={event.data['finish_reason']}, usage={event.data['usage']}]")
        elif event.event == "error":
            print(f"\n[error: {event.data['error']}]")


if __name__ == "__main__":
    main()
