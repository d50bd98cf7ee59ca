"""Shared bits of the HTTP examples: settings from the environment, the client, model registration,
error checking, a small Server-Sent Events parser, a printer for a streamed run, and scripting the
test suite's fake model server for dry runs."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx

URL = os.environ.get("AGENTSITE_URL", "http://127.0.0.1:8080").rstrip("/")
API_KEY = os.environ.get("AGENTSITE_API_KEY", "")
PROTOCOL = os.environ.get("AGENTSITE_MODEL_PROTOCOL", "ollama")
BASE = os.environ.get("AGENTSITE_MODEL_BASE", "http://127.0.0.1:11434" if PROTOCOL == "ollama" else "http://127.0.0.1:8000/v1")
NAME = os.environ.get("AGENTSITE_MODEL_NAME", "qwen3:14b")
MODEL_ID = os.environ.get("AGENTSITE_MODEL_ID", "example-model")

NO_API_KEY = "Set AGENTSITE_API_KEY (create one with: .venv/bin/python manage.py create_api_key <user>)."
STREAM_TIMEOUT = httpx.Timeout(30, read=600)  # long reads: a streamed run with tool rounds


def client(timeout: float | httpx.Timeout = 300, no_key: str = NO_API_KEY) -> httpx.Client:
    """An httpx client for AGENTSITE_URL with the API key; exits with ``no_key`` when the key is unset."""
    if not API_KEY:
        sys.exit(no_key)
    return httpx.Client(base_url=URL, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=timeout)


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


def check(resp: httpx.Response) -> Any:
    """The JSON body (None if empty); on HTTP >= 400 exit with the error envelope's code and message."""
    if resp.status_code >= 400:
        try:
            err = resp.json()["error"]
            sys.exit(f"{resp.request.method} {resp.request.url.path} -> {resp.status_code} {err['code']}: {err['message']}")
        except (ValueError, KeyError, TypeError):
            sys.exit(f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}: {resp.text[:500]}")
    return resp.json() if resp.content else None


def model_id(http: httpx.Client, register: bool, protocol: str | None = None, *,
             vision: bool = False, verbose: bool = False) -> str:
    """AGENTSITE_MODEL_ID, or a model registered from AGENTSITE_MODEL_* (--register-model).

    Registering (staff key) creates ``AGENTSITE_MODEL_ID`` or ``example-<protocol>``, or updates it
    if it exists. ``protocol``: the protocol to register (default AGENTSITE_MODEL_PROTOCOL or
    "ollama"); without ``register``, a note if the registered model speaks another one.
    ``vision``: register with ``supports_vision``; without ``register``, a note if it lacks it.
    ``verbose``: print what was registered.
    """
    if not register:
        mid = os.environ.get("AGENTSITE_MODEL_ID")
        if not mid:
            sys.exit(f"Set AGENTSITE_MODEL_ID to a registered {'vision ' if vision else ''}model id, or use --register-model.")
        if protocol or vision:
            model = check(http.get(f"/v1/models/{mid}"))
            if protocol and model["api_protocol"] != protocol:
                print(f"note: model {mid!r} speaks {model['api_protocol']!r}; --protocol {protocol} is ignored")
            if vision and not model.get("supports_vision"):
                print(f"note: model {mid!r} is not registered with supports_vision: true")
        return mid
    protocol = protocol or os.environ.get("AGENTSITE_MODEL_PROTOCOL", "ollama")
    base, name = os.environ.get("AGENTSITE_MODEL_BASE"), os.environ.get("AGENTSITE_MODEL_NAME")
    if not base or not name:
        sys.exit("--register-model needs AGENTSITE_MODEL_BASE and AGENTSITE_MODEL_NAME.")
    mid = os.environ.get("AGENTSITE_MODEL_ID") or f"example-{protocol}"
    body: dict[str, Any] = {"api_protocol": protocol, "api_base": base, "model_name": name}
    if vision:
        body["supports_vision"] = True
    resp = http.post("/v1/models", json={"model_id": mid, **body})
    if resp.status_code == 409:  # already there: update it to what we were given
        check(http.patch(f"/v1/models/{mid}", json=body))
    else:
        check(resp)
    if verbose:
        print(f"model {mid!r}: {protocol} {base} {name}")
    return mid


def sse_events(resp: httpx.Response) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs of a text/event-stream body; ': ping' comments are skipped."""
    event, data = "message", []
    for line in resp.iter_lines():
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


def content_text(content: Any, limit: int | None = None) -> str:
    """A tool result's content on one line: its text parts (other parts as ``[type]``), cut at ``limit``."""
    if isinstance(content, str):
        text = content
    else:
        text = " ".join(i.get("text", "") if i.get("type") == "text" else f"[{i.get('type')}]" for i in content or [])
    text = " ".join(text.split())
    return text if limit is None or len(text) <= limit else text[:limit] + "…"


def print_tool_call(data: dict) -> None:
    print(f"→ tool call   {data['name']}({json.dumps(data['arguments'])})  [{data['tool_id']}]")


def print_tool_result(data: dict) -> None:
    flag = " ERROR" if data.get("is_error") else ""
    print(f"← tool result [{data['tool_id']}] {data.get('duration_ms', 0):.1f} ms{flag}: {content_text(data['content'], 300)}")


def stream_run(http: httpx.Client, body: dict, *, thinking: bool = False,
               on_tool_call: Callable[[dict], None] = print_tool_call,
               on_tool_result: Callable[[dict], None] = print_tool_result) -> dict:
    """POST /v1/infer/stream and print the run as it arrives: the answer's deltas on an ``assistant:``
    line (with ``thinking``, the reasoning deltas too), each tool call and result through the callbacks.
    Exits on an HTTP error or an ``error`` event; returns the ``done`` event's data."""
    with http.stream("POST", "/v1/infer/stream", json=body) as resp:
        if resp.status_code >= 400:
            resp.read()
            check(resp)
        in_text = False
        for event, data in sse_events(resp):
            if event == "delta":
                text = data.get("content") or (data.get("thinking") if thinking else None)
                if text:
                    if not in_text:
                        print("assistant: ", end="")
                        in_text = True
                    print(text, end="", flush=True)
                continue
            if in_text:
                print()
                in_text = False
            if event == "tool_call":
                on_tool_call(data)
            elif event == "tool_result":
                on_tool_result(data)
            elif event == "error":
                sys.exit(f"stream error: {data['error']['code']}: {data['error']['message']}")
            elif event == "done":
                return data
    sys.exit("the stream ended without a 'done' event")


def script_fake(fake_url: str, replies: list[dict]) -> None:
    """Queue replies on the test suite's fake model server (tests/fakes/fake_llm.py) for a dry run."""
    httpx.post(f"{fake_url.rstrip('/')}/_fake/script", json={"model": None, "replies": replies}).raise_for_status()
    print(f"DRY RUN: no real model answers below. {len(replies)} canned replies were queued on the test suite's "
          f"fake model server ({fake_url}); the server and the tools run for real.")


def fake_requests(fake_url: str) -> list[dict]:
    """The fake model server's request log (tests/fakes/fake_llm.py)."""
    return httpx.get(f"{fake_url.rstrip('/')}/_fake/requests").json()["requests"]
