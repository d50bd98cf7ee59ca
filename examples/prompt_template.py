"""Prompt templates: ``{{placeholders}}`` filled per request, via the SDK and via HTTP.

    AGENTSITE_MODEL_BASE=... AGENTSITE_MODEL_PROTOCOL=ollama AGENTSITE_MODEL_NAME=qwen3:14b \
    AGENTSITE_URL=http://127.0.0.1:8080 AGENTSITE_API_KEY=ask_... \
    .venv/bin/python examples/prompt_template.py

Part 1 uses the in-memory TemplateRegistry of the SDK. Part 2 stores the template with
``POST /v1/prompt-templates`` (staff key; updated in place if it exists) and names it in a
``/v1/infer`` message; the model is registered as ``AGENTSITE_MODEL_ID`` (default
``example-model``) if needed. Without ``AGENTSITE_API_KEY`` only part 1 runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from inference.engine import ModelRegistry, Runtime, TemplateRegistry
from inference.engine.types import InferenceRequest, Message, ModelConfig

TEMPLATE_NAME = "example-summarize"
TEMPLATE = "Please summarize in {{language}}, in one sentence:\n\n{{text}}"
ARGUMENTS = {
    "language": "English",
    "text": "Django is a high-level Python web framework that encourages rapid development and clean, "
    "pragmatic design. {{not a placeholder}}: substituted values are inserted verbatim.",
}


def sdk() -> None:
    from _client import BASE, NAME, PROTOCOL

    model = ModelConfig(model_id="example", api_protocol=PROTOCOL, api_base=BASE, model_name=NAME,
                        api_key=os.environ.get("AGENTSITE_MODEL_API_KEY") or None)  # fmt: skip
    runtime = Runtime(ModelRegistry([model]), template_registry=TemplateRegistry({TEMPLATE_NAME: TEMPLATE}))
    message = Message(role="user", prompt_template=TEMPLATE_NAME, arguments=ARGUMENTS)
    result = runtime.infer(InferenceRequest.of("example", messages=[message]))
    print("== SDK ==")
    print("prompt sent:\n" + str(result.messages[0].content))
    print("answer:", result.content)


def http() -> None:
    from _client import API_KEY, client, ensure_model

    if not API_KEY:
        print("\n== HTTP == skipped: set AGENTSITE_API_KEY (and AGENTSITE_URL) to run it.")
        return
    print("\n== HTTP ==")
    with client() as c:
        model_id = ensure_model(c)
        r = c.post(
            "/v1/prompt-templates",
            json={"name": TEMPLATE_NAME, "content": TEMPLATE, "description": "examples/prompt_template.py"},
        )
        if r.status_code == 409:  # exists: update it (bumps its version)
            r = c.patch(f"/v1/prompt-templates/{TEMPLATE_NAME}", json={"content": TEMPLATE})
        r.raise_for_status()
        t = r.json()
        print(f"template {t['name']!r} version {t['version']}, variables {t['variables']}")
        preview = c.post(f"/v1/prompt-templates/{TEMPLATE_NAME}/render", json={"arguments": ARGUMENTS})
        preview.raise_for_status()
        body = {"model_id": model_id, "messages": [{"role": "user", "prompt_template": TEMPLATE_NAME, "arguments": ARGUMENTS}]}
        r = c.post("/v1/infer", json=body)
        if r.status_code != 200:
            sys.exit(f"/v1/infer: HTTP {r.status_code} {r.text}")
        out = r.json()
        assert out["messages"][0]["content"] == preview.json()["content"], "render preview and inference differ"
        print("prompt sent:\n" + out["messages"][0]["content"])
        print("answer:", out["content"])
        missing = c.post(
            "/v1/infer",
            json={"model_id": model_id, "messages": [{"role": "user", "prompt_template": TEMPLATE_NAME, "arguments": {}}]},
        )
        error = missing.json()["error"]
        print(f"without arguments: HTTP {missing.status_code} {error['code']} {error.get('detail')}")


if __name__ == "__main__":
    sdk()
    http()
