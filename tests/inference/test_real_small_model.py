"""A real small model served by llama.cpp: a tool call through /v1/infer runs the tool.

Skipped unless a model is at hand (see docs/local-models.md, "Checking a real small model"):

* ``AGENTSITE_TEST_GGUF=/path/to/model.gguf`` with the ``xllamacpp`` package installed in this
  environment: llama.cpp's server is started in-process on 127.0.0.1 for the test; or
* ``AGENTSITE_TEST_LLAMA_URL=http://127.0.0.1:8080/v1``: a llama-server (or any OpenAI-compatible
  local server) that is already running, e.g. ``llama-server -m model.gguf --jinja``.

A small instruct model that was trained for tool use is needed (Qwen2.5-0.5B/1.5B-Instruct,
Qwen2.5-Coder-0.5B-Instruct, Llama-3.2-1B-Instruct, …). The model is registered with
``tool_call_format: "auto"``, so the call counts whether the server parses it into
``tool_calls`` or leaves it in the text.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import httpx
import pytest
from rest_framework.test import APIClient

from registry.models import LLMModel, Tool
from tests.factories import ADD_PARAMS, LLMModelFactory, ToolFactory

GGUF = os.environ.get("AGENTSITE_TEST_GGUF", "")
LLAMA_URL = os.environ.get("AGENTSITE_TEST_LLAMA_URL", "")
HAVE_XLLAMACPP = importlib.util.find_spec("xllamacpp") is not None

SKIP_REASON = (
    "no real small model: set AGENTSITE_TEST_LLAMA_URL to a running llama-server, or AGENTSITE_TEST_GGUF to a "
    "small instruct GGUF with the xllamacpp package installed (docs/local-models.md). None ships on PyPI or npm "
    "that can call tools: the GGUFs found there (Gemma 3 270M base, SmolLM2-135M-Instruct) answer in prose."
)
pytestmark = pytest.mark.skipif(not (LLAMA_URL or (GGUF and HAVE_XLLAMACPP)), reason=SKIP_REASON)


@pytest.fixture(scope="module")
def llama_base() -> Iterator[str]:
    """The /v1 base of a llama.cpp server with the model loaded."""
    if LLAMA_URL:
        yield LLAMA_URL.rstrip("/")
        return
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = GGUF
    params.n_ctx = 4096
    params.use_jinja = True  # the model's own chat template, with its tool-call format
    params.hostnames = ["127.0.0.1"]
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = max(1, (os.cpu_count() or 2))
    server = xllamacpp.Server(params)
    try:
        yield server.listening_address.rstrip("/") + "/v1"
    finally:
        del server


@pytest.fixture
def small_model(db, llama_base: str) -> LLMModel:
    name = httpx.get(llama_base + "/models", timeout=30).json()["data"][0]["id"]
    return LLMModelFactory(model_id="small", api_base=llama_base, model_name=name, tool_call_format="auto",
                           max_output_tokens=256, timeout_s=600, options={"temperature": 0})


@pytest.fixture
def add_tool(db) -> Tool:
    return ToolFactory(tool_id="math.add", description="Add two integers a and b and return the sum.",
                       parameters=ADD_PARAMS)


def test_a_real_small_model_calls_a_tool_through_infer(small_model: LLMModel, add_tool: Tool, alice_api: APIClient) -> None:
    body = {
        "model_id": "small",
        "tool_ids": ["math.add"],
        "max_tool_rounds": 2,
        "messages": [
            {"role": "system", "content": "You are a calculator. Use the add tool for every sum; never add in your head."},
            {"role": "user", "content": "What is 1234 + 4321? Use the add tool."},
        ],
    }
    res = alice_api.post("/v1/infer", body, format="json")
    assert res.status_code == 200, res.content
    done = res.json()
    results = [m for m in done["messages"] if m["role"] == "tool"]
    assert done["tool_rounds"] >= 1 and results, done
    assert results[0]["tool_id"] == "math.add" and results[0]["content"][0]["text"] == "5555", results
    assert "<tool_call>" not in done["content"] and "[TOOL_CALLS]" not in done["content"]
