"""Hostile bodies meet the ASGI guard (agentsite/guard.py) before any view: the caller is known
from the headers first, then the body is held to its size, depth, number and message limits.

Most tests call the real ASGI application in-process with hand-made scopes (so they can show
what was *not* read); one drives a real Daphne worker while another client polls /healthz.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from agentsite.asgi import application
from sessions.models import Session, SessionMessage
from tests.factories import LLMModelFactory, UserFactory, api_key

pytestmark = pytest.mark.django_db(transaction=True)

HUGE = json.dumps({"model_id": "m", "messages": [{}] * 300_000}).encode()


async def call(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
               content_length: int | None = None, read_body: bool = True) -> tuple[int, dict[str, str], Any]:
    """One request through the ASGI app; ``read_body=False`` fails the test if the app reads the body."""
    hdrs = {"content-type": "application/json", **(headers or {})}
    hdrs["content-length"] = str(len(body) if content_length is None else content_length)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.encode(), v.encode()) for k, v in hdrs.items()], "client": ("127.0.0.1", 5555),
             "server": ("127.0.0.1", 80)}
    sent_body = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not read_body:
            raise AssertionError("the body was read")
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    status, out_headers, chunks = 0, {}, []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, out_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await application(scope, receive, send)
    raw = b"".join(chunks)
    is_json = out_headers.get("content-type", "").startswith("application/json")
    return status, out_headers, json.loads(raw) if raw and is_json else raw


@pytest.fixture
def key() -> str:
    user = UserFactory(username="hostile-alice", password="x-pass-123456")
    LLMModelFactory(model_id="m", api_base="http://127.0.0.1:9", model_name="m")
    return api_key(user)[1]


def _code(body: Any) -> str:
    return body["error"]["code"]


@pytest.mark.parametrize("path", ["/v1/infer", "/v1/infer/stream", "/v1/tools/call", "/v1/models", "/v1/sessions"])
async def test_a_stranger_is_refused_from_the_headers_without_the_body_being_read(path: str) -> None:
    status, headers, body = await call("POST", path, HUGE, read_body=False)
    assert (status, _code(body)) == (401, "not_authenticated")
    status, headers, body = await call("POST", path, HUGE, {"authorization": "Bearer ask_nope"}, read_body=False)
    assert (status, _code(body)) == (401, "authentication_failed") and headers["www-authenticate"].startswith("Bearer")


async def test_method_not_allowed_only_after_authentication(key: str) -> None:
    status, _, body = await call("GET", "/v1/infer", read_body=False)
    assert status == 401
    status, headers, body = await call("GET", "/v1/infer", headers={"authorization": f"Bearer {key}"})
    assert (status, _code(body), headers["allow"]) == (405, "method_not_allowed", "POST")


async def test_an_oversized_body_is_refused_from_content_length_without_reading_it(key: str, settings) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "MAX_BODY_BYTES": 1000}
    auth = {"authorization": f"Bearer {key}"}
    status, _, body = await call("POST", "/v1/infer", b"{}", auth, content_length=10**9, read_body=False)
    assert (status, _code(body)) == (413, "request_too_large")
    # A body longer than its announced length (or chunked) is counted as it is read.
    status, _, body = await call("POST", "/v1/infer", b"[" + b" " * 5000 + b"]", auth, content_length=10)
    assert (status, _code(body)) == (413, "request_too_large")


@pytest.mark.parametrize("path", ["/v1/infer", "/v1/infer/stream"])
async def test_too_many_messages_is_413_and_writes_nothing(key: str, path: str) -> None:
    body = json.dumps({"model_id": "m", "session_id": "new", "messages": [{"content": "x"}] * 1001}).encode()
    status, _, answer = await call("POST", path, body, {"authorization": f"Bearer {key}"})
    assert (status, _code(answer)) == (413, "request_too_large")
    assert await Session.objects.acount() == 0 and await SessionMessage.objects.acount() == 0


@pytest.mark.parametrize(("raw", "what"), [
    (b'{"model_id": "m", "text": "hi", "options": {"temperature": NaN}}', "NaN"),
    (b'{"model_id": "m", "text": "hi", "options": {"temperature": Infinity}}', "Infinity"),
    (b'{"model_id": "m", "text": "hi", "options": {"temperature": 1e999}}', "out of range"),
    (b'{"model_id": "m", "text": "\xff\xfe"}', "UTF-8"),
    (b'{"model_id": "m", "text": "hi", "options": ' + b"[" * 990 + b"]" * 990 + b"}", "deeper"),
    (b'{"model_id": "m", "text": "hi", "options": ' + b'{"a":' * 65 + b"1" + b"}" * 65 + b"}", "deeper"),
])
@pytest.mark.parametrize("path", ["/v1/infer", "/v1/infer/stream", "/v1/models"])
async def test_malformed_json_is_400_before_any_work(key: str, raw: bytes, what: str, path: str) -> None:
    body = raw.replace(b'"text": "hi"', b'"text": "hi", "session_id": "new"') if "infer" in path else raw
    status, _, answer = await call("POST", path, body, {"authorization": f"Bearer {key}"})
    assert (status, _code(answer)) == (400, "malformed_json") and what in answer["error"]["message"]
    assert await Session.objects.acount() == 0


def test_a_stranger_with_a_huge_body_does_not_stall_the_server(live_server_proc) -> None:
    """The 0.9 MB, 300,000-message body without credentials, while /healthz keeps answering."""
    url = live_server_proc.url
    stop, health = threading.Event(), []

    def poll() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                health.append(client.get(url + "/healthz").status_code)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        answers = [httpx.post(url + "/v1/infer", content=HUGE, headers={"content-type": "application/json"}, timeout=30)
                   for _ in range(5)]
    finally:
        stop.set()
        poller.join()
    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [(401, "not_authenticated")] * 5
    assert health and set(health) == {200}


def answer_to_headers_alone(url: str, head: str) -> bytes:
    """Send only a request's headers (its declared body never comes) and read what answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


@pytest.mark.parametrize("path", ["/v1/infer", "/openai/v1/chat/completions", "/mcp"])
def test_a_strangers_big_body_is_refused_from_its_headers_before_it_is_sent(live_server_proc, path: str) -> None:
    # Daphne would read the whole declared body before the app saw the request: the worker
    # answers from the headers instead (the client here never sends the body, and still
    # gets its 401 at once).
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n"
    got = answer_to_headers_alone(live_server_proc.url, head)
    assert got.startswith(b"HTTP/1.1 401 "), got[:200]
    assert b"www-authenticate: bearer" in got.lower() and b"connection: close" in got.lower()
    # over the size limit: 413 to anyone, credentials or not
    head = f"POST /v1/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\nContent-Length: {64 * 1024 * 1024}\r\n"
    assert answer_to_headers_alone(live_server_proc.url, head).startswith(b"HTTP/1.1 413 ")


def test_a_refused_body_is_discarded_to_its_end_then_the_connection_closes_cleanly(live_server_proc) -> None:
    # The answer comes first, the body is still taken (a client or a proxy in front sends all of
    # it before reading): the client reads its 401 and then an orderly end, not a reset, which
    # a proxy would turn into a 502.
    host, port = live_server_proc.url.removeprefix("http://").split(":")
    half = len(HUGE) // 2
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(HUGE) + HUGE[:half])
        time.sleep(0.3)  # the answer is out by now: a server that closed then would reset what follows
        sock.sendall(HUGE[half:])
        got = b""
        while chunk := sock.recv(65536):  # a reset raises ConnectionResetError
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ") and json.loads(body)["error"]["code"] == "not_authenticated"


def test_a_known_caller_with_a_big_body_is_read_as_before(live_server_proc, staff_user) -> None:
    # Early refusal is only for what the guard would refuse anyway: a caller with a key and a
    # large (valid) body is read whole and answered by the app.
    _, key = api_key(staff_user)
    body = json.dumps({"model_id": "nope", "text": "x" * 400_000}).encode()
    res = httpx.post(live_server_proc.url + "/v1/infer", content=body, timeout=30,
                     headers={"content-type": "application/json", "authorization": f"Bearer {key}"})
    assert res.status_code == 404 and res.json()["error"]["code"] == "model_not_found", res.text


def test_a_form_body_reaches_the_app_unparsed_and_a_bad_one_gets_its_error(live_server_proc, staff_user) -> None:
    # Twisted parses no form or multipart body itself: one it could not parse used to get a bare
    # 400 of its own, with no body; the app answers it in the API's envelope.
    _, key = api_key(staff_user)
    headers = {"authorization": f"Bearer {key}", "content-type": "multipart/form-data"}  # no boundary
    res = httpx.post(live_server_proc.url + "/v1/tools/skill", content=b"--X\r\n\r\nzip", headers=headers, timeout=30)
    assert res.status_code == 400 and res.json()["error"]["code"] == "malformed_body", res.text
