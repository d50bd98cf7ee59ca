"""Streaming through a real Daphne process: disconnects and cancels reach the model server."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from sessions.models import SessionMessage
from tests.e2e.conftest import LiveServer, sse_events
from tests.factories import LLMModelFactory, UserFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer, Reply

pytestmark = pytest.mark.e2e


@pytest.fixture
def setup(transactional_db, fake_llm: FakeLLMServer):
    for protocol in ("openai", "ollama"):
        LLMModelFactory(model_id=f"slow-{protocol}", api_protocol=protocol, fake=fake_llm, model_name="slow", timeout_s=30)
    return bearer(UserFactory(username="eve"))


@pytest.mark.parametrize("protocol", ["openai", "ollama"])
def test_client_disconnect_cancels_upstream_and_keeps_the_partial(live_server_proc: LiveServer, setup, fake_llm: FakeLLMServer,
                                                                   protocol: str) -> None:
    fake_llm.script([Reply(content="word " * 200, chunk_size=5, delay_s=0.05)])
    body = {"model_id": f"slow-{protocol}", "session_id": "new", "text": "talk"}
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", live_server_proc.url + "/v1/infer/stream", json=body, headers=setup) as res:
            assert res.status_code == 200
            events = sse_events(res.iter_lines(), count=5)
    sid = events[0][1]["session_id"]
    assert fake_llm.wait_disconnects(1, timeout=10), "the upstream request was not cancelled"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and SessionMessage.objects.filter(session_id=sid).count() < 2:
        time.sleep(0.1)
    partial = SessionMessage.objects.get(session_id=sid, seq=1)
    assert partial.incomplete and partial.content.startswith("word") and len(partial.content) < 1000


def test_cancel_stops_a_slow_stream_and_keeps_the_partial(live_server_proc: LiveServer, setup, fake_llm: FakeLLMServer) -> None:
    fake_llm.script([Reply(content="slow " * 200, chunk_size=5, delay_s=0.05)])
    body = {"model_id": "slow-openai", "session_id": "new", "text": "talk"}
    with httpx.Client(timeout=15) as client:
        with client.stream("POST", live_server_proc.url + "/v1/infer/stream", json=body, headers=setup) as res:
            lines = res.iter_lines()
            first = sse_events(lines, count=3)
            sid = first[0][1]["session_id"]
            cancel = client.post(f"{live_server_proc.url}/v1/sessions/{sid}/cancel", headers=setup)
            assert cancel.status_code == 202, cancel.text
            rest = sse_events(lines, until="done")
    done = rest[-1]
    assert done[0] == "done" and done[1]["finish_reason"] == "cancelled"
    assert done[1]["content"].startswith("slow") and len(done[1]["content"]) < 1000
    assert fake_llm.wait_disconnects(1, timeout=10)
    partial = SessionMessage.objects.get(session_id=sid, seq=1)
    assert partial.incomplete and partial.content == done[1]["content"]


def test_keepalive_pings_while_the_model_thinks(setup, fake_llm: FakeLLMServer) -> None:
    server = LiveServer({"AGENTSITE_SSE_PING_S": "0.2"})
    try:
        fake_llm.script([Reply(content="late", first_delay_s=1.0)])
        with httpx.Client(timeout=10) as client:
            with client.stream(
                "POST", server.url + "/v1/infer/stream", json={"model_id": "slow-ollama", "text": "x"}, headers=setup
            ) as res:
                raw = res.read().decode()
        assert raw.count(": ping\n\n") >= 2 and "event: done" in raw
    finally:
        server.stop()


def _read_answer(sock: socket.socket, buffered: bytes) -> tuple[bytes, bytes, bytes]:
    """One HTTP/1.1 answer off ``sock``: (head, body, what came after it)."""
    data = buffered
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, data = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(data) < length:
            data += sock.recv(65536)
        return head, data[:length], data[length:]
    body = b""
    while True:
        while b"\r\n" not in data:
            data += sock.recv(65536)
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        while len(data) < size + 2:
            data += sock.recv(65536)
        body, data = body + data[:size], data[size + 2 :]
        if not size:
            return head, body, data


def test_one_connection_carries_answers_and_streams_and_closes_when_asked(
    live_server_proc: LiveServer, setup, fake_llm: FakeLLMServer
) -> None:
    # Each answer's first bytes are written out at once instead of on the loop's next turn: a kept-alive
    # connection must still carry whole answers one after the other, and one asked to close must end
    # after its whole answer.
    host, port = live_server_proc.url.removeprefix("http://").split(":")
    fake_llm.script([Reply(content="one"), Reply(content="two three four", chunk_size=3), Reply(content="five")])

    def request(path: str, close: bool = False) -> bytes:
        body = json.dumps({"model_id": "slow-openai", "text": "hi"}).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {setup['Authorization']}\r\n"
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body

    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request("/v1/infer"))
        head, body, rest = _read_answer(sock, b"")
        assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["content"] == "one"
        sock.sendall(request("/v1/infer/stream"))
        head, body, rest = _read_answer(sock, rest)
        deltas = [json.loads(line[6:])["content"] for line in body.split(b"\n") if line.startswith(b"data: {\"content\"")]
        assert head.startswith(b"HTTP/1.1 200") and "".join(deltas) == "two three four" and b"event: done" in body
        sock.sendall(request("/v1/infer", close=True))
        head, body, rest = _read_answer(sock, rest)
        assert json.loads(body)["content"] == "five" and rest == b""
        assert sock.recv(65536) == b""  # then the server closes it
