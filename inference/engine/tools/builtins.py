"""Built-in tools: ``bash`` (off by default; in bubblewrap or not at all) and ``fetch`` (SSRF-guarded).

Both run as ``builtin:{tool_id}`` executors. Their limits come from ``ctx.settings``
(``ToolSettings``, whose defaults are the documented ones).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ..types import ToolConfig, ToolResult, text_result
from .base import ToolContext, ToolExecutor, ToolSettings

# ==== bash ===================================================================================

BASH_DISABLED = "The bash tool is disabled on this server; staff must enable it (setting BASH_ENABLED)."


def bash_tool_config() -> ToolConfig:
    return ToolConfig(
        tool_id="bash",
        tool_type="builtin",
        name="bash",
        description=(
            "Run a shell command with bash -c in this session's scratch folder (the working "
            "directory; files persist between calls of the same session). Returns the exit code, "
            "stdout and stderr; long output is cut in the middle. The command runs in a sandbox (a "
            "read-only minimal system, a private /tmp, usually no network) with limits on time, "
            "CPU, memory, processes and file size; each result says which sandbox was used."
        ),
        parameters={
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "the shell command line to run"},
                "timeout_s": {
                    "type": "number",
                    "description": "seconds before the command is killed (capped by the server's limit)",
                },
            },
            "required": ["command"],
        },
    )


class _CappedStream:
    """Keeps the first and last ``cap // 2`` bytes of a stream, counting what falls between."""

    def __init__(self, cap: int) -> None:
        self.half = max(cap // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            del self.tail[: max(0, len(self.tail) - self.half)]

    def text(self) -> str:
        elided = self.total - len(self.head) - len(self.tail)
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if elided <= 0:
            return head + tail
        return f"{head}\n[… {elided} bytes elided …]\n{tail}"


async def _pump(reader: asyncio.StreamReader, sink: _CappedStream) -> None:
    while chunk := await reader.read(65536):
        sink.feed(chunk)


# The read-only system a sandboxed command sees: programs, libraries, and the few /etc entries
# they need. Nothing else of the host: not the data dir, the database, the project, /home, /root.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_ENTRIES = (
    "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",  # finding programs and libraries
    "passwd", "group", "nsswitch.conf",  # names for uids (whoami, ls -l, git)
    "localtime", "timezone", "mime.types", "protocols", "services", "hosts", "host.conf", "gai.conf",
    "ssl", "ca-certificates", "pki", "crypto-policies",  # TLS trust, for when the network is on
)
_NETWORK_ETC_ENTRIES = ("resolv.conf",)

BWRAP = "bwrap"  # looked up on PATH (tests point it at a missing name to simulate a host without it)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _bwrap_argv(bwrap: str, scratch: str, settings: ToolSettings) -> list[str]:
    """bubblewrap's arguments: a new root holding only a read-only system, a new /dev, a new
    /proc for a new pid namespace, a private /tmp and the scratch folder, the one writable bind."""
    argv = [bwrap]
    exposed: list[str] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
            exposed.append(os.path.realpath(path))
    for name in _ETC_ENTRIES + (_NETWORK_ETC_ENTRIES if settings.bash_network else ()):
        path = f"/etc/{name}"
        if os.path.lexists(path):
            argv += ["--ro-bind-try", path, path]
            exposed.append(os.path.realpath(path))
    # The server's own files may sit under a system folder (a project in /usr/src, say): mask them.
    for hidden in dict.fromkeys(os.path.realpath(p) for p in settings.bash_hidden_paths if p):
        if not any(_within(hidden, root) for root in exposed):
            continue
        if os.path.isdir(hidden):
            argv += ["--tmpfs", hidden]
        elif os.path.exists(hidden):
            argv += ["--ro-bind", "/dev/null", hidden]
    argv += [
        "--dev", "/dev",
        "--proc", "/proc",  # a new procfs of the new pid namespace: /proc/1 is the sandbox's own
        "--tmpfs", "/tmp",
        "--bind", scratch, scratch,  # last, so a scratch under /tmp or a masked folder stays visible
        "--remount-ro", "/",  # the new root itself (its skeleton of mount points)
        "--unshare-all",  # user, ipc, pid, net, uts, cgroup namespaces
        *(["--share-net"] if settings.bash_network else []),
        "--die-with-parent",
        "--new-session",  # no controlling terminal: blocks TIOCSTI input injection
        "--cap-drop", "ALL",
        "--chdir", scratch,
    ]  # fmt: skip
    return argv


def _limited(shell: str, command: str, settings: ToolSettings, *, sandboxed: bool) -> list[str]:
    """``bash -c command`` under the resource limits, set by the shell itself before it execs.

    They are set inside the sandbox rather than on bubblewrap: RLIMIT_NPROC counts processes per
    user, and in the sandbox's own user namespace only its processes count (outside, every
    thread of the server would, so no process limit is set unsandboxed). A limit that cannot be
    set because the server's own hard limit is lower stays at that lower value.
    """
    limits = [
        ("-t", settings.bash_cpu_s),
        ("-v", settings.bash_memory_mb * 1024),  # KiB
        ("-f", settings.bash_file_mb * 1024),  # 1024-byte blocks
        ("-u", settings.bash_max_procs if sandboxed else 0),
    ]
    prelude = "".join(f"ulimit {flag} {int(value)} 2>/dev/null; " for flag, value in limits if value > 0)
    return [shell, "-c", prelude + 'exec "$0" -c "$1"', shell, command]


@dataclass(frozen=True, slots=True)
class SandboxProbe:
    usable: bool
    reason: str


_PROBE_RETRY_S = 60.0  # a failed probe is retried after this long (bubblewrap installed meanwhile)
_probe_cache: dict[tuple[str, bool, tuple[str, ...]], tuple[SandboxProbe, float]] = {}


def probe_sandbox(settings: ToolSettings | None = None) -> SandboxProbe:
    """Whether bubblewrap works here with these settings (sync; a subprocess of at most 10 s).

    It is often installed yet unusable in containers (no user namespaces, seccomp), so it is
    tried, not only looked up. Success is remembered for the process; a failure for a minute.
    """
    settings = settings or ToolSettings()
    bwrap = shutil.which(BWRAP)
    if not bwrap:
        return SandboxProbe(False, "bubblewrap (bwrap) is not installed")
    key = (bwrap, settings.bash_network, settings.bash_hidden_paths)
    cached = _probe_cache.get(key)
    if cached and (cached[0].usable or time.monotonic() - cached[1] < _PROBE_RETRY_S):
        return cached[0]
    result = _probe(bwrap, settings)
    _probe_cache[key] = (result, time.monotonic())
    return result


def _probe(bwrap: str, settings: ToolSettings) -> SandboxProbe:
    shell = shutil.which("bash")
    if not shell:
        return SandboxProbe(False, "bash is not installed")
    with tempfile.TemporaryDirectory(prefix="bwrap-probe-") as scratch:
        argv = [*_bwrap_argv(bwrap, scratch, settings), "--", *_limited(shell, "exit 0", settings, sandboxed=True)]
        try:
            proc = subprocess.run(argv, env=_scrubbed_env(scratch), stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        except (subprocess.TimeoutExpired, OSError) as exc:
            return SandboxProbe(False, f"the bubblewrap probe failed: {exc}")
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip() or f"exit code {proc.returncode}"
        return SandboxProbe(False, f"bubblewrap is installed but unusable here: {detail}")
    return SandboxProbe(True, "bwrap")


async def bwrap_status(settings: ToolSettings | None = None) -> SandboxProbe:
    """``probe_sandbox`` off the event loop (the first call per settings runs bubblewrap)."""
    return await asyncio.to_thread(probe_sandbox, settings)


def sandbox_refusal(reason: str) -> str:
    return (
        f"The bash tool cannot run on this server: it has no working sandbox ({reason}). "
        "An operator can install bubblewrap (the 'bwrap' command, e.g. apt-get install bubblewrap) "
        "on a host or container that allows unprivileged user namespaces; or, only if the server "
        "itself is an isolated, disposable machine, set AGENTSITE_BASH_UNSANDBOXED=1 to run "
        "commands without a sandbox (see docs/security.md)."
    )


def _scrubbed_env(scratch: str) -> dict[str, str]:
    """An allow-list, not a deny-list: the server's environment holds API keys and DB passwords."""
    return {
        "PATH": os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin",
        "HOME": scratch,
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "TERM": "dumb",
    }


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the shell's children too, not only the shell
    except (ProcessLookupError, PermissionError):
        pass


class BashExecutor(ToolExecutor):
    async def execute(self, tool: ToolConfig, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        tid = tool.tool_id
        settings = ctx.settings
        if not settings.bash_enabled:
            return text_result(tid, BASH_DISABLED, is_error=True)
        command = arguments.get("command")
        if not isinstance(command, str) or not command.strip():
            return text_result(tid, "'command' must be a non-empty string", is_error=True)
        if not ctx.scratch_dir:
            return text_result(tid, "No scratch folder is configured for this run; bash cannot run.", is_error=True)
        shell = shutil.which("bash")
        if not shell:
            return text_result(tid, "bash is not installed on this server.", is_error=True)
        if settings.bash_unsandboxed:
            sandboxed = False
            sandbox_note = "sandbox: none (unsandboxed mode is on: AGENTSITE_BASH_UNSANDBOXED)"
        else:
            probe = await bwrap_status(settings)
            if not probe.usable:  # fail closed: never fall back to running on the host
                return text_result(tid, sandbox_refusal(probe.reason), is_error=True, structured={"sandboxed": False})
            sandboxed = True
            network = "network on" if settings.bash_network else "no network"
            sandbox_note = f"sandbox: bwrap ({network}, read-only system, writable scratch)"
        scratch = os.path.abspath(ctx.scratch_dir)
        os.makedirs(scratch, mode=0o700, exist_ok=True)

        limit = float(settings.bash_timeout_s)
        requested = arguments.get("timeout_s")
        timeout = min(float(requested), limit) if isinstance(requested, (int, float)) and requested > 0 else limit
        cap = int(settings.bash_output_cap)

        argv = _limited(shell, command, settings, sandboxed=sandboxed)
        if sandboxed:
            argv = [*_bwrap_argv(shutil.which(BWRAP) or BWRAP, scratch, settings), "--", *argv]

        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=scratch,
            env=_scrubbed_env(scratch),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # own process group, so a timeout can kill all of it
        )
        out, err = _CappedStream(cap), _CappedStream(cap)
        assert proc.stdout is not None and proc.stderr is not None
        run = asyncio.ensure_future(asyncio.gather(_pump(proc.stdout, out), _pump(proc.stderr, err), proc.wait()))
        timed_out = False
        try:
            done, _ = await asyncio.wait({run}, timeout=timeout)
            timed_out = not done
        finally:  # also on cancellation: never leave the command running
            if not run.done():
                _kill_group(proc)
                # A grandchild that escaped the group may hold the pipes open: don't hang on it.
                await asyncio.wait({run}, timeout=2)
                run.cancel()
                await proc.wait()

        lines = [
            f"timed out after {timeout:g}s; the command was killed" if timed_out else f"exit code: {proc.returncode}",
            sandbox_note,
        ]
        if out.total:
            lines.append(f"--- stdout ---\n{out.text()}")
        if err.total:
            lines.append(f"--- stderr ---\n{err.text()}")
        if not out.total and not err.total:
            lines.append("(no output)")
        structured = {"exit_code": None if timed_out else proc.returncode, "timed_out": timed_out, "sandboxed": sandboxed}
        return text_result(tid, "\n".join(lines), is_error=timed_out, structured=structured)


# ==== fetch ==================================================================================


def fetch_tool_config() -> ToolConfig:
    return ToolConfig(
        tool_id="fetch",
        tool_type="builtin",
        name="fetch",
        description=(
            "Fetch a public web page or file over HTTP(S) with GET and return its content: HTML "
            "is converted to Markdown, JSON and text are returned as they are, other types are "
            "only described. Private and internal network addresses are refused; size and time "
            "are limited."
        ),
        parameters={
            "type": "object",
            "properties": {
                "url": {"type": "string", "description": "an absolute http:// or https:// URL"},
                "max_bytes": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "read at most this many bytes of the body (capped by the server's limit)",
                },
            },
            "required": ["url"],
        },
    )


class FetchRefused(Exception):
    """The URL or one of its redirects points somewhere the guard does not allow."""


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_host(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (tests replace this to keep DNS and dialing local)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
_METADATA_IPS = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


def blocked_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``ip`` may not be fetched, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address wrapped in IPv6 reaches the IPv4 host: judge that one.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            return blocked_reason(embedded)
        if ip.teredo:
            return "a Teredo tunnel address"
    if ip in _METADATA_IPS:
        return "a cloud metadata address"
    checks = (
        (ip.is_loopback, "a loopback address"),
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "a carrier-grade NAT address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "a non-public address"),
    )
    return next((reason for hit, reason in checks if hit), None)


async def _pinned_address(url: httpx.URL, allow_hosts: set[str], resolver: Resolver) -> str:
    """The address to connect to for ``url``, after checking every address its host resolves to."""
    if url.scheme not in ("http", "https"):
        raise FetchRefused(f"only http and https URLs can be fetched, not {url.scheme or 'a relative URL'!r}")
    host = url.raw_host.decode("ascii").lower().rstrip(".")  # IDNA-encoded, as DNS sees it
    if not host:
        raise FetchRefused("the URL has no host")
    allowed = host in allow_hosts
    if host in _METADATA_HOSTS and not allowed:
        raise FetchRefused(f"{host} is a cloud metadata host")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [
                ipaddress.ip_address(a.split("%", 1)[0])
                for a in await resolver(host, url.port or (443 if url.scheme == "https" else 80))
            ]
        except (OSError, ValueError) as exc:
            raise FetchRefused(f"cannot resolve {host}: {exc}") from None
    if not addresses:
        raise FetchRefused(f"{host} has no address")
    if not allowed:
        # Every address must pass, or a host answering [public, private] would slip through.
        for ip in addresses:
            if reason := blocked_reason(ip):
                raise FetchRefused(f"{host} resolves to {ip}, {reason}")
    return str(addresses[0])


def _pinned_request(client: httpx.AsyncClient, url: httpx.URL, ip: str) -> httpx.Request:
    """A GET to ``url`` that dials ``ip`` — the address we validated, never a fresh DNS answer.

    Resolving once and connecting by name would let a DNS-rebinding host answer "public" to our
    check and "169.254.169.254" to the connect. So the request URL carries the IP itself, the
    Host header carries the original name (virtual hosting), and for HTTPS the ``sni_hostname``
    extension makes httpcore send the original name as SNI and verify the certificate against
    it — TLS stays as strict as for an ordinary request.
    """
    host_header = url.netloc.decode("ascii")
    request = client.build_request("GET", url.copy_with(host=ip), headers={"Host": host_header})
    if url.scheme == "https":
        request.extensions["sni_hostname"] = url.raw_host.decode("ascii")
    return request


def _describe_body(content_type: str, data: bytes, charset: str | None) -> str:
    mime = content_type.split(";", 1)[0].strip().lower()
    text = data.decode(charset or "utf-8", errors="replace") if _looks_textual(mime, data) else None
    if text is None:
        return f"[{mime or 'unknown'} content, {len(data)} bytes: not shown]"
    if mime in ("text/html", "application/xhtml+xml") or (
        not mime and text.lstrip()[:15].lower().startswith(("<!doctype html", "<html"))
    ):
        return html_to_markdown(text)
    if mime.endswith("json"):
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            return text
    return text


_TEXTUAL_APPS = ("json", "xml", "javascript", "ecmascript", "yaml", "toml", "csv", "x-sh", "sql", "graphql")


def _looks_textual(mime: str, data: bytes) -> bool:
    if mime.startswith("text/") or (mime.startswith("application/") and any(t in mime for t in _TEXTUAL_APPS)):
        return True
    if not mime:  # no Content-Type: sniff
        return b"\x00" not in data[:4096]
    return False


def html_to_markdown(html: str) -> str:
    from bs4 import BeautifulSoup
    from markdownify import MarkdownConverter

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    # markdownify would keep the text of these; it is code or page chrome, not content.
    for tag in soup(["script", "style", "noscript", "template", "svg", "iframe", "head"]):
        tag.decompose()
    # Images are dropped: their src may be a huge data: URI and the model cannot see them anyway.
    markdown = MarkdownConverter(heading_style="ATX", strip=["img"]).convert_soup(soup)
    markdown = re.sub(r"\n{3,}", "\n\n", markdown).strip()
    return f"Title: {title}\n\n{markdown}" if title else markdown


class FetchExecutor(ToolExecutor):
    """``resolver`` and ``transport`` are injectable so tests never touch real DNS or networks."""

    def __init__(self, resolver: Resolver | None = None, transport: Callable[[], httpx.AsyncBaseTransport] | None = None) -> None:
        self._resolver = resolver
        self._transport = transport

    async def execute(self, tool: ToolConfig, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        tid = tool.tool_id
        raw_url = arguments.get("url")
        if not isinstance(raw_url, str) or not raw_url.strip():
            return text_result(tid, "'url' must be a non-empty string", is_error=True)
        limit = int(ctx.settings.fetch_max_bytes)
        requested = arguments.get("max_bytes")
        max_bytes = min(int(requested), limit) if isinstance(requested, int) and requested > 0 else limit
        timeout = float(ctx.settings.fetch_timeout_s)
        allow_hosts = {str(h).lower().rstrip(".") for h in ctx.settings.fetch_allow_hosts}
        try:
            async with asyncio.timeout(timeout):
                return await self._fetch(tid, httpx.URL(raw_url.strip()), max_bytes, timeout, allow_hosts)
        except FetchRefused as exc:
            return text_result(tid, f"Refused: {exc}", is_error=True)
        except TimeoutError:
            return text_result(tid, f"Fetching {raw_url} timed out after {timeout:g}s", is_error=True)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            return text_result(tid, f"Fetching {raw_url} failed: {exc}", is_error=True)

    async def _fetch(self, tid: str, url: httpx.URL, max_bytes: int, timeout: float, allow_hosts: set[str]) -> ToolResult:
        resolver = self._resolver or resolve_host  # looked up per call so tests can patch it
        transport = self._transport() if self._transport else httpx.AsyncHTTPTransport()
        # trust_env=False: an HTTP(S)_PROXY from the environment would dial by name and undo the pin.
        async with httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False, follow_redirects=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                ip = await _pinned_address(url, allow_hosts, resolver)
                response = await client.send(_pinned_request(client, url, ip), stream=True)
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECTS and location:
                        url = url.join(location)  # relative to the name-based URL, not the IP one
                        continue  # the next round checks the new target before dialing it
                    return await self._read(tid, url, response, max_bytes)
                finally:
                    await response.aclose()
        raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")

    async def _read(self, tid: str, url: httpx.URL, response: httpx.Response, max_bytes: int) -> ToolResult:
        data = bytearray()
        truncated = False
        # aiter_bytes decodes gzip/deflate, so the cap bounds decompressed bytes (no gzip bombs).
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > max_bytes:
                del data[max_bytes:]
                truncated = True
                break
        content_type = response.headers.get("content-type", "")
        body = _describe_body(content_type, bytes(data), response.charset_encoding)
        header = f"URL: {url}\nContent-Type: {content_type or 'unknown'}\nStatus: {response.status_code}"
        if truncated:
            header += f"\n[body truncated at {max_bytes} bytes]"
        structured = {"url": str(url), "status": response.status_code, "content_type": content_type, "truncated": truncated}
        return text_result(tid, f"{header}\n\n{body}", is_error=response.status_code >= 400, structured=structured)
