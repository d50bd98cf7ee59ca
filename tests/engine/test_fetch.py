"""The built-in fetch tool and its SSRF guard.

No packet may leave for a non-loopback address even if the guard were broken: DNS is a stub
(``resolve_host`` is replaced), the executor's transport refuses to dial anything but a
loopback IP, and as a last line ``socket.connect`` itself refuses non-loopback peers.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from inference.engine import default_executors
from inference.engine.tools import builtins
from inference.engine.tools.base import ToolContext, ToolSettings, executor_kind
from inference.engine.tools.builtins import FetchExecutor, blocked_reason, fetch_tool_config

TOOL = fetch_tool_config()

STUB_DNS = {
    "site.test": ["127.0.0.1"],
    "evil.test": ["127.0.0.1"],
    "evil6.test": ["::1"],
    "meta.test": ["169.254.169.254"],
    "private.test": ["10.0.0.1"],
    "cgnat.test": ["100.64.0.7"],
    "mixed.test": ["93.184.216.34", "10.0.0.1"],  # one public answer must not launder a private one
    "localhost": ["127.0.0.1", "::1"],
    "metadata.google.internal": ["169.254.169.254"],
}


async def stub_resolver(host: str, port: int) -> list[str]:
    try:
        return list(STUB_DNS[host])
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


class DialForbidden(AssertionError):
    pass


def _require_loopback(host: str) -> None:
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        raise DialForbidden(f"dial by name {host!r}: the address is not pinned") from None
    if not ip.is_loopback:
        raise DialForbidden(f"the test tried to dial {ip}")


class GuardedTransport(httpx.AsyncBaseTransport):
    """Dials only loopback IPs, recording each one; anything else fails the test, undialed."""

    def __init__(self, dialed: list[str]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._dialed = dialed

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _require_loopback(request.url.host)
        self._dialed.append(request.url.host)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture(autouse=True)
def no_outside_world(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtins, "resolve_host", stub_resolver)
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            _require_loopback(address[0])
        return real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            _require_loopback(address[0])
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


# ---- a tiny local web server ----------------------------------------------------------------

PAGE = """<!doctype html><html><head><title>Local Page</title><style>body{color:red}</style>
<script>var secret = "script text";</script></head>
<body><h1>Welcome</h1><p>Some <b>bold</b> text and a <a href="/next">link</a>.</p>
<ul><li>one</li><li>two</li></ul></body></html>"""


class Handler(BaseHTTPRequestHandler):
    hosts_seen: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        Handler.hosts_seen.append(self.headers.get("Host", ""))
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/page":
            self._send(200, PAGE.encode(), "text/html; charset=utf-8")
        elif url.path == "/redirect":
            self._send(302, b"", "text/plain", {"Location": query["to"][0]})
        elif url.path == "/loop":
            n = int(query.get("n", ["0"])[0])
            self._send(302, b"", "text/plain", {"Location": f"/loop?n={n + 1}"})
        elif url.path == "/json":
            self._send(200, b'{"a": 1, "b": [true, null]}', "application/json")
        elif url.path == "/big":
            self._send(200, b"x" * 100_000, "text/plain")
        elif url.path == "/png":
            self._send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png")
        elif url.path == "/slow":
            time.sleep(3)
            self._send(200, b"late", "text/plain")
        else:
            self._send(404, b"no such page", "text/plain")


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dialed() -> list[str]:
    return []


async def fetch(dialed: list[str], url: str, allow: list[str] | None = None, **extra: Any):
    executor = FetchExecutor(transport=lambda: GuardedTransport(dialed))
    settings: dict[str, Any] = {"fetch_allow_hosts": tuple(allow or ())}
    settings.update({k.lower(): extra.pop(k) for k in list(extra) if k.isupper()})
    ctx = ToolContext(settings=ToolSettings(**settings))
    return await executor.execute(TOOL, {"url": url, **extra}, ctx)


def text_of(result) -> str:
    return result.content[0]["text"]


# ---- the guard on the first hop -------------------------------------------------------------


FORBIDDEN = [
    "http://127.0.0.1:{port}/page",
    "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost:{port}/page",
    "http://evil.test:{port}/page",
    "http://evil6.test:{port}/page",
    "http://[::1]:{port}/page",
    "http://[::ffff:127.0.0.1]:{port}/page",
    "http://[fd00:ec2::254]/",
    "http://meta.test/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://private.test/",
    "http://cgnat.test/",
    "http://mixed.test/",
    "http://0.0.0.0:{port}/page",
    "http://224.0.0.1/",
    "http://100.64.0.1/",
    "http://192.168.1.1/",
    "http://[fe80::1]/",
    "http://2130706433:{port}/page",  # 127.0.0.1 as a bare integer
]


@pytest.mark.parametrize("target", FORBIDDEN)
async def test_forbidden_targets_are_refused_undialed(server: int, dialed: list[str], target: str) -> None:
    result = await fetch(dialed, target.format(port=server))
    assert result.is_error, text_of(result)
    assert text_of(result).startswith("Refused:")
    assert dialed == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.test/x", "/relative/path", "gopher://127.0.0.1/"])
async def test_other_schemes_are_refused(dialed: list[str], url: str) -> None:
    result = await fetch(dialed, url)
    assert result.is_error and dialed == []


async def test_unknown_host_is_reported(dialed: list[str]) -> None:
    result = await fetch(dialed, "http://nowhere.test/")
    assert result.is_error and "cannot resolve nowhere.test" in text_of(result)


# ---- redirects are checked at every hop -----------------------------------------------------


@pytest.mark.parametrize("target", FORBIDDEN)
async def test_redirect_to_forbidden_target_is_refused(server: int, dialed: list[str], target: str) -> None:
    to = target.format(port=server)
    result = await fetch(dialed, f"http://site.test:{server}/redirect?to={to}", allow=["site.test"])
    assert result.is_error and text_of(result).startswith("Refused:"), text_of(result)
    assert dialed == ["127.0.0.1"]  # the allow-listed first hop only


async def test_relative_redirects_are_followed(server: int, dialed: list[str]) -> None:
    result = await fetch(dialed, f"http://site.test:{server}/redirect?to=/json", allow=["site.test"])
    assert not result.is_error
    assert text_of(result).startswith(f"URL: http://site.test:{server}/json\nContent-Type: application/json")


async def test_too_many_redirects(server: int, dialed: list[str]) -> None:
    result = await fetch(dialed, f"http://site.test:{server}/loop", allow=["site.test"])
    assert result.is_error and "more than 5 redirects" in text_of(result)
    assert len(dialed) == 6


# ---- real fetches from the local server (allow-listed) --------------------------------------


async def test_html_page_becomes_markdown(server: int, dialed: list[str]) -> None:
    Handler.hosts_seen.clear()
    result = await fetch(dialed, f"http://site.test:{server}/page", allow=["site.test"])
    assert not result.is_error
    text = text_of(result)
    assert text.startswith(f"URL: http://site.test:{server}/page\nContent-Type: text/html; charset=utf-8\n")
    assert "Title: Local Page" in text
    assert "# Welcome" in text and "**bold**" in text and "[link](/next)" in text and "one" in text
    assert "script text" not in text and "color:red" not in text and "<p>" not in text
    # Pinned: we dialed the validated IP, yet the server saw the original name.
    assert dialed == ["127.0.0.1"]
    assert Handler.hosts_seen == [f"site.test:{server}"]
    assert result.structured == {
        "url": f"http://site.test:{server}/page",
        "status": 200,
        "content_type": "text/html; charset=utf-8",
        "truncated": False,
    }


async def test_allow_list_by_ip(server: int, dialed: list[str]) -> None:
    result = await fetch(dialed, f"http://127.0.0.1:{server}/json", allow=["127.0.0.1"])
    assert not result.is_error
    assert json.loads(text_of(result).split("\n\n", 1)[1]) == {"a": 1, "b": [True, None]}


async def test_size_cap(server: int, dialed: list[str]) -> None:
    result = await fetch(dialed, f"http://site.test:{server}/big", allow=["site.test"], max_bytes=1000)
    text = text_of(result)
    assert "[body truncated at 1000 bytes]" in text and text.split("\n\n", 1)[1] == "x" * 1000
    capped = await fetch(dialed, f"http://site.test:{server}/big", allow=["site.test"], max_bytes=10**9, FETCH_MAX_BYTES=500)
    assert "[body truncated at 500 bytes]" in text_of(capped)


async def test_binary_is_described(server: int, dialed: list[str]) -> None:
    result = await fetch(dialed, f"http://site.test:{server}/png", allow=["site.test"])
    assert not result.is_error and "[image/png content, 108 bytes: not shown]" in text_of(result)


async def test_http_error_status_is_an_error_result(server: int, dialed: list[str]) -> None:
    result = await fetch(dialed, f"http://site.test:{server}/missing", allow=["site.test"])
    assert result.is_error and "Status: 404" in text_of(result) and "no such page" in text_of(result)


async def test_timeout(server: int, dialed: list[str]) -> None:
    started = time.monotonic()
    result = await fetch(dialed, f"http://site.test:{server}/slow", allow=["site.test"], FETCH_TIMEOUT_S=0.5)
    assert result.is_error and "timed out" in text_of(result)
    assert time.monotonic() - started < 2.5


async def test_registered_executor_uses_the_guard(server: int) -> None:
    # The production executor (real transport, stub DNS) refuses before dialing anything.
    result = await FetchExecutor().execute(TOOL, {"url": f"http://evil.test:{server}/page"}, ToolContext())
    assert result.is_error and "127.0.0.1, a loopback address" in text_of(result)


# ---- units ---------------------------------------------------------------------------------


def test_https_request_is_pinned_with_correct_sni() -> None:
    client = httpx.AsyncClient()
    request = builtins._pinned_request(client, httpx.URL("https://example.test:8443/a?b=1"), "93.184.216.34")
    assert str(request.url) == "https://93.184.216.34:8443/a?b=1"
    assert request.headers["Host"] == "example.test:8443"
    assert request.extensions["sni_hostname"] == "example.test"
    v6 = builtins._pinned_request(client, httpx.URL("http://example.test/"), "2606:2800:220:1::1")
    assert v6.url.host == "2606:2800:220:1::1" and v6.headers["Host"] == "example.test"
    assert "sni_hostname" not in v6.extensions


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("93.184.216.34", False),
        ("2606:2800:220:1::1", False),
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.0.1", True),
        ("100.64.0.1", True),
        ("169.254.169.254", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("240.0.0.1", True),
        ("::1", True),
        ("::", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("fd00:ec2::254", True),
        ("ff02::1", True),
        ("::ffff:10.0.0.1", True),
        ("::ffff:93.184.216.34", False),
        ("2002:7f00:1::", True),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a9fe:a9fe", True),  # NAT64 wrapping 169.254.169.254
    ],
)
def test_blocked_reason(address: str, blocked: bool) -> None:
    assert (blocked_reason(ipaddress.ip_address(address)) is not None) is blocked


def test_config_shape() -> None:
    assert TOOL.tool_id == TOOL.name == "fetch" and TOOL.tool_type == "builtin"
    assert TOOL.parameters["required"] == ["url"]
    assert isinstance(default_executors()[executor_kind(TOOL)], FetchExecutor)
