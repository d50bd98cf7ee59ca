"""Shared bits of the HTTP examples: settings from the environment and the model registration."""

from __future__ import annotations

import os
import sys

import httpx

URL = os.environ.get("AGENTSITE_URL", "http://127.0.0.1:8080").rstrip("/")
API_KEY = os.environ.get("AGENTSITE_API_KEY", "")
PROTOCOL = os.environ.get("AGENTSITE_MODEL_PROTOCOL", "ollama")
BASE = os.environ.get("AGENTSITE_MODEL_BASE", "http://127.0.0.1:11434" if PROTOCOL == "ollama" else "http://127.0.0.1:8000/v1")
NAME = os.environ.get("AGENTSITE_MODEL_NAME", "qwen3:14b")
MODEL_ID = os.environ.get("AGENTSITE_MODEL_ID", "example-model")


def client() -> httpx.Client:
    if not API_KEY:
        sys.exit("Set AGENTSITE_API_KEY (create one with: .venv/bin/python manage.py create_api_key <user>).")
    return httpx.Client(base_url=URL, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=300)


def ensure_model(c: httpx.Client) -> str:
    """Register AGENTSITE_MODEL_ID for the model server unless it exists (needs a staff key)."""
    r = c.get(f"/v1/models/{MODEL_ID}")
    if r.status_code == 200:
        return MODEL_ID
    body = {"model_id": MODEL_ID, "api_protocol": PROTOCOL, "api_base": BASE, "model_name": NAME}
    if os.environ.get("AGENTSITE_MODEL_API_KEY"):
        body["api_key"] = os.environ["AGENTSITE_MODEL_API_KEY"]
    r = c.post("/v1/models", json=body)
    if r.status_code != 201:
        sys.exit(f"Could not register model {MODEL_ID!r}: HTTP {r.status_code} {r.text}")
    print(f"registered model {MODEL_ID!r} -> {PROTOCOL} {BASE} ({NAME})")
    return MODEL_ID
