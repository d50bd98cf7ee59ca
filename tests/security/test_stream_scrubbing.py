"""Secrets in text that leaves the server in pieces, and secrets only an MCP server's ``envFile``
holds: masked wherever the text leaves (docs/security.md, "Secrets never leave").

The fake model server streams exactly the pieces scripted, so a secret is cut across deltas at
every position the chunk sizes below produce.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from core.secrets import mask
from tests.factories import ADD_PARAMS, LLMModelFactory, ToolFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.sse import parse_sse, streamed_body

MODEL_KEY = "sk-STREAMEDMODELKEY-9a8b7c6d5e"
TOKEN = "tok3nTOK3Ntok3nTOK3N"  # unknown to the registry: masked because it follows "Bearer"
ANSWER = f"Your key is {MODEL_KEY}, sent as Authorization: Bearer {TOKEN} to the API. Done."
THINKING = f"The logs showed {MODEL_KEY} twice."
CHUNK_SIZES = (1, 3, 7, 16)


def leaks(text: str) -> list[str]:
    """Pieces of the secrets in ``text`` (a mask keeps 3 characters in front and 4 behind)."""
    return [secret for secret in (MODEL_KEY, TOKEN) if secret[3:-4] in text]


@pytest.fixture
def model(db, fake_llm: FakeLLMServer):
    return LLMModelFactory(model_id="m", model_name="m", fake=fake_llm, api_key=MODEL_KEY, timeout_s=5)


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_a_secret_split_across_deltas_is_masked_in_the_event_stream(
    model, fake_llm: FakeLLMServer, alice_api: APIClient, chunk_size: int
) -> None:
    fake_llm.script([Reply(content=ANSWER, thinking=THINKING, chunk_size=chunk_size)])
    res = alice_api.post("/v1/infer/stream", {"model_id": "m", "text": "hi"}, format="json")
    events = parse_sse(streamed_body(res))
    deltas = [data for name, data in events if name == "delta"]
    assert len(deltas) > 2  # streamed in pieces, not in one
    content = "".join(d.get("content", "") for d in deltas)
    thinking = "".join(d.get("thinking", "") for d in deltas)
    assert leaks(content) == [] and leaks(thinking) == []
    message = next(data for name, data in events if name == "message")
    # nothing lost or reordered: the pieces join to what the finished message holds
    assert content == message["content"] and thinking == message["thinking"]
    assert mask(MODEL_KEY) in content and mask(TOKEN) in content and content.endswith(" to the API. Done.")
    assert thinking == f"The logs showed {mask(MODEL_KEY)} twice."
    assert events[-1][0] == "done"


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_a_secret_split_across_chunks_is_masked_on_the_openai_endpoint(
    model, fake_llm: FakeLLMServer, alice_api: APIClient, chunk_size: int
) -> None:
    fake_llm.script([Reply(content=ANSWER, chunk_size=chunk_size)], model="m")
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    res = alice_api.post("/openai/v1/chat/completions", json.dumps(body), content_type="application/json")
    lines = [line for line in streamed_body(res).decode().split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert leaks(content) == []
    assert content == ANSWER.replace(MODEL_KEY, mask(MODEL_KEY)).replace(TOKEN, mask(TOKEN))


def test_values_an_mcp_server_reads_from_its_env_file_are_masked(
    db, fake_llm: FakeLLMServer, staff_api: APIClient, alice_api: APIClient, tmp_path: Path
) -> None:
    file_token = "envfile-FILETOKEN-5e6f7a8b9c"
    env_file = tmp_path / "search.env"
    env_file.write_text(f"# the search service\nexport SEARCH_TOKEN='{file_token}'\nREGION=eu\n")
    server = {"command": sys.executable, "args": ["-c", "pass"], "envFile": str(env_file), "disabled": True}
    res = staff_api.post("/v1/tools/mcp", {"mcpServers": {"search": server}}, format="json")
    assert res.status_code in (200, 201), res.content
    LLMModelFactory(model_id="m", model_name="m", fake=fake_llm, timeout_s=5)
    fake_llm.script([Reply(status=401, error_body={"error": {"message": f"bad token {file_token}"}}),
                     Reply(content=f"the search token is {file_token}")])
    failed = alice_api.post("/v1/infer", {"model_id": "m", "text": "hi"}, format="json")
    assert failed.status_code == 502
    assert "bad token" in failed.content.decode() and "FILETOKEN" not in failed.content.decode()
    answered = alice_api.post("/v1/infer", {"model_id": "m", "text": "hi"}, format="json")
    assert answered.json()["content"] == f"the search token is {mask(file_token)}"


def test_a_secret_a_sub_agent_streams_in_pieces_is_masked_in_its_progress(
    model, fake_llm: FakeLLMServer, staff_api: APIClient, alice_api: APIClient
) -> None:
    LLMModelFactory(model_id="helper-model", model_name="helper", fake=fake_llm, timeout_s=5)
    for name, model_id, tools in (("writer", "helper-model", []), ("lead", "m", ["agent.writer"])):
        res = staff_api.post("/v1/agents", {"name": name, "model_id": model_id, "tool_ids": tools}, format="json")
        assert res.status_code == 201, res.content
    fake_llm.script([Reply(tool_calls=[("agent_writer", {"input": "the key?"}, "call_w")]), Reply(content="Told.")],
                    model="m")
    fake_llm.script([Reply(content=ANSWER, chunk_size=3)], model="helper")
    events = parse_sse(streamed_body(alice_api.post("/v1/infer/stream", {"agent": "lead", "text": "hi"}, format="json")))
    assert events[-1][0] == "done"
    relayed = "".join(p["data"].get("content", "") for name, p in events if name == "tool_progress" and p["event"] == "delta")
    assert leaks(relayed) == []
    assert relayed == ANSWER.replace(MODEL_KEY, mask(MODEL_KEY)).replace(TOKEN, mask(TOKEN))


def test_ordinary_text_goes_out_as_it_comes(model, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    # Only what may be the start of a secret is held back (here: an "s" or "sk" at a piece's
    # end could begin the key): plain prose is relayed as it comes, a character or two late at
    # most, never words or a key's length behind.
    text = "Ask skaters: Bears sleep. Tokens, keys and secrets stay out. Done."
    fake_llm.script([Reply(content=text, chunk_size=4)])
    events = parse_sse(streamed_body(alice_api.post("/v1/infer/stream", {"model_id": "m", "text": "hi"}, format="json")))
    deltas = [data["content"] for name, data in events if name == "delta"]
    assert "".join(deltas) == text and deltas[0] == "Ask "
    pieces = -(-len(text) // 4)
    assert len(deltas) >= pieces - 1
    for i in range(pieces - 1):
        assert len("".join(deltas[: i + 1])) >= 4 * (i + 1) - 2, deltas


@pytest.mark.parametrize("chunk_size", (5, 16))
def test_a_long_query_secret_and_a_url_password_streamed_in_pieces_are_masked(
    model, fake_llm: FakeLLMServer, alice_api: APIClient, chunk_size: int
) -> None:
    # Neither is known to the registry: the generic patterns catch them, even when the value
    # holds "=" (base64 padding) and is far longer than a piece.
    sig = "Qk" * 100 + "=="
    text = f"Fetch https://cdn.example/a.txt?sig={sig} or ftp://bob:hunter2pass@files.example/x, then stop."
    fake_llm.script([Reply(content=text, chunk_size=chunk_size)])
    events = parse_sse(streamed_body(alice_api.post("/v1/infer/stream", {"model_id": "m", "text": "hi"}, format="json")))
    content = "".join(data.get("content", "") for name, data in events if name == "delta")
    assert "QkQkQkQkQk" not in content and "hunter2pass" not in content
    assert content == text.replace(sig, mask(sig)).replace("hunter2pass", mask("hunter2pass"))


QUOTED_KEY = 'sk-QUOTE"D\\KEY-8f7e6d5c4b'  # printable ASCII: a key may hold a quote or a backslash


def strings(data: object) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for v in data.values() for s in strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in strings(v)]
    return []


def test_a_secret_json_would_escape_is_masked_in_every_event(db, fake_llm: FakeLLMServer, alice_api: APIClient) -> None:
    # Events used to be encoded first and scrubbed as text: in JSON this key reads QUOTE\"D\\KEY,
    # which the scrubber, looking for the key itself, did not find.
    LLMModelFactory(model_id="q", model_name="m", fake=fake_llm, api_key=QUOTED_KEY, timeout_s=5)
    ToolFactory(tool_id="math.add", parameters=ADD_PARAMS)
    fake_llm.script([
        Reply(tool_calls=[("add", {"a": 1, "b": 2, "note": QUOTED_KEY})]),
        Reply(status=401, error_body={"error": {"message": f"invalid key {QUOTED_KEY}"}}),
    ])
    res = alice_api.post("/v1/infer/stream", {"model_id": "q", "text": "hi", "tool_ids": ["math.add"]}, format="json")
    events = parse_sse(streamed_body(res))
    assert [name for name, _ in events if name in ("tool_call", "error")] == ["tool_call", "error"]
    for name, data in events:
        assert not [text for text in strings(data) if QUOTED_KEY[3:-4] in text], name


def test_a_secret_json_would_escape_is_masked_in_client_tool_calls_on_the_openai_endpoint(
    db, fake_llm: FakeLLMServer, alice_api: APIClient
) -> None:
    LLMModelFactory(model_id="q", model_name="m", fake=fake_llm, api_key=QUOTED_KEY, timeout_s=5)
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    for stream in (False, True):
        fake_llm.script([Reply(tool_calls=[("get_weather", {"note": QUOTED_KEY}, "c_w")])], model="m")
        body = {"model": "q", "messages": [{"role": "user", "content": "go"}], "tools": [weather], "stream": stream}
        res = alice_api.post("/openai/v1/chat/completions", json.dumps(body), content_type="application/json")
        assert res.status_code == 200, res.content
        if stream:
            lines = streamed_body(res).decode().splitlines()
            pieces = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
        else:
            pieces = [res.json()]
        said = [choice.get("delta") or choice.get("message") or {} for p in pieces for choice in p["choices"]]
        calls = [c for s in said for c in s.get("tool_calls") or []]
        arguments = [json.loads(c["function"]["arguments"]) for c in calls]
        assert arguments == [{"note": mask(QUOTED_KEY)}], (stream, arguments)
