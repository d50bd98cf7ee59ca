"""Shared helpers for the benchmarks: processes, percentiles, machine description, results.

Everything talks to 127.0.0.1 only. Each bench starts its own fake model server
(``tests.fakes.fake_llm`` as a process) and, when it needs the app, its own Daphne worker
(``manage.py serve``) on a throwaway ``AGENTSITE_DATA_DIR`` (migrated first), with a staff user,
an API key and one model registration per protocol pointing at the fake.

``BENCH_ROOT=<another checkout>`` serves that checkout's code instead of this one's (the
benches, the fake and the client stay these): the whole ``bench/run_all.py`` before and after a
change, on one machine in one sitting. ``bench/compare.py`` does it for the overhead alone,
alternating the two in one run.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/x.py`: make `tests.fakes` and `bench` importable
    sys.path.insert(0, str(ROOT))

PY = sys.executable
RESULTS = ROOT / "docs" / "benchmarks.md"
HOST = "127.0.0.1"
PROTOCOLS = ("openai", "ollama")
FAKE_MODEL = "fake-model"  # the name the fake server knows

from tests.mcp_servers import children_running, free_port, stop  # noqa: E402  (after the path insert)

# ---- limits ----------------------------------------------------------------------------------------


def raise_nofile(want: int = 65536) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE for this process (children inherit it); returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _child_limits() -> None:  # preexec_fn: make sure each child has the raised limit too
    raise_nofile()


# ---- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of a non-empty sequence."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def p50(values: Sequence[float]) -> float:
    return percentile(values, 50)


def p95(values: Sequence[float]) -> float:
    return percentile(values, 95)


def ms(seconds: float) -> float:
    return seconds * 1000.0


# ---- machine description ---------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        mem = f"{int(m.group(1)) / 1024 / 1024:.1f} GiB" if m else ""
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count() or "?"),
        "memory": mem,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def machine_line() -> str:
    m = machine()
    return f"{m['cpu']}, {m['cores']} cores, {m['memory']} RAM, Python {m['python']}, {m['os']}"


# ---- results ---------------------------------------------------------------------------------


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    def cell(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in text:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))


_HEADER = """# Benchmarks

Produced by `.venv/bin/python bench/run_all.py` (or one bench alone, e.g.
`.venv/bin/python bench/overhead.py`). Each run appends a dated section below; the newest is
last. Every bench starts its own fake model server (`tests/fakes/fake_llm.py`) and its own
Daphne worker (`manage.py serve`) on a throwaway data directory, and talks to 127.0.0.1 only.
Client, fake server and worker share the machine's cores, so absolute figures depend on it.
"""


def append_results(title: str, body: str) -> None:
    """Append a dated section (with the machine description) to docs/benchmarks.md."""
    RESULTS.parent.mkdir(exist_ok=True)
    if not RESULTS.exists() or not RESULTS.read_text().strip():
        RESULTS.write_text(_HEADER)
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    section = f"\n## {title} — {stamp}\n\nMachine: {machine_line()}.\n\n{body.strip()}\n"
    with RESULTS.open("a") as f:
        f.write(section)
    print(f"\nappended to {RESULTS.relative_to(ROOT)}")


# ---- processes -------------------------------------------------------------------------------


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DEBUG")}
    env.update({"PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING"})
    env.update(extra or {})
    return env


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (kB) of a process, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:", "Threads:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


class Sampler:
    """Calls ``sample()`` every ``interval`` s in a thread while the ``with`` block runs."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class RssSampler(Sampler):
    """Samples a process's VmRSS every ``interval`` s in a thread; ``peak_kb`` is the max seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(interval)
        self.pid = pid
        self.peak_kb = 0
        self.peak_threads = 0

    def sample(self) -> None:
        st = proc_status(self.pid)
        self.peak_kb = max(self.peak_kb, st.get("VmRSS", 0))
        self.peak_threads = max(self.peak_threads, st.get("Threads", 0))


class ChildSampler(Sampler):
    """Polls a process's live children running ``needle``; keeps the maximum count and every pid seen."""

    def __init__(self, pid: int, needle: str, interval: float = 0.005) -> None:
        super().__init__(interval)
        self.pid, self.needle = pid, needle
        self.max_count, self.pids = 0, set()

    def sample(self) -> None:
        kids = children_running(self.needle, self.pid)
        self.max_count = max(self.max_count, len(kids))
        self.pids.update(kids)


@dataclass
class FakeServer:
    """``python -m tests.fakes.fake_llm`` as a process."""

    chunks: int = 1
    delay: float = 0.0
    url: str = ""
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self, workdir: Path) -> FakeServer:
        self.log_path = workdir / "fake_llm.log"
        args = [PY, "-m", "tests.fakes.fake_llm", "--host", HOST, "--port", "0",
                "--default-chunks", str(self.chunks), "--default-delay", str(self.delay)]  # fmt: skip
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=open(self.log_path, "w"),
            text=True, preexec_fn=_child_limits,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"fake_llm did not start: {line!r}\n{self.log_path.read_text()}")
        self.url = m.group(1)
        return self

    @property
    def openai_base(self) -> str:
        return self.url + "/v1"

    def base_for(self, protocol: str) -> str:
        return self.openai_base if protocol == "openai" else self.url

    def stop(self) -> None:
        stop(self.proc, timeout=10)


_SETUP = """
import json
from django.contrib.auth import get_user_model
from registry.models import LLMModel
cfg = json.loads({cfg!r})
User = get_user_model()
# a superuser: benches register MCP servers and tools through /v1 (registry permissions)
user = User.objects.filter(username="bench").first() or User.objects.create_user("bench", is_staff=True, is_superuser=True)
try:
    from accounts.services import api_key_create
except ImportError:  # a revision from before the accounts app (bench/compare.py runs those too)
    from registry.models import ApiKey
    api_key_create = ApiKey.generate
_, key = api_key_create(user=user, name="bench")
for m in cfg["models"]:
    LLMModel.objects.update_or_create(model_id=m["model_id"], defaults=m)
print("BENCH_KEY=" + key)
"""


@dataclass
class App:
    """The agentsite app in one Daphne worker process, on a throwaway data dir."""

    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    root: Path = ROOT  # the checkout to serve (bench/compare.py points it at another revision)
    port: int = 0
    url: str = ""
    api_key: str = ""
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def _env(self) -> dict[str, str]:
        return _env({"AGENTSITE_DATA_DIR": str(self.workdir / "data"), **self.extra_env})

    def manage(self, *args: str) -> str:
        res = subprocess.run([PY, "manage.py", *args], cwd=self.root, env=self._env(), capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{res.stdout}\n{res.stderr}")
        return res.stdout

    def setup(self, fake: FakeServer) -> App:
        """Migrate, then create the staff user, its API key and the model registrations."""
        self.manage("migrate", "--noinput", "-v", "0")
        models = [
            {"model_id": f"fake-{p}", "api_protocol": p, "api_base": fake.base_for(p), "model_name": FAKE_MODEL}
            for p in PROTOCOLS
        ]
        out = self.manage("shell", "-c", _SETUP.format(cfg=json.dumps({"models": models})))
        m = re.search(r"BENCH_KEY=(\S+)", out)
        if not m:
            raise RuntimeError(f"could not create the API key:\n{out}")
        self.api_key = m.group(1)
        return self

    def start(self) -> App:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = self.workdir / f"app-{self.port}.log"
        self.proc = subprocess.Popen(
            [PY, "manage.py", "serve", f"{HOST}:{self.port}"], cwd=self.root, env=self._env(),
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, preexec_fn=_child_limits,
        )
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited:\n" + self.log_path.read_text())
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start in 30 s:\n" + self.log_path.read_text())

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        stop(self.proc, timeout=10)


class Stack:
    """Context manager: tempdir + fake server (+ the app when ``app=True``), all torn down after."""

    def __init__(
        self, *, app: bool = True, chunks: int = 1, delay: float = 0.0, keep: bool = False, root: Path | None = None
    ) -> None:
        # BENCH_KEEP=1 keeps the temp dir (logs of the fake and the worker) for a look afterwards
        self.want_app, self.keep = app, keep or os.environ.get("BENCH_KEEP") == "1"
        self.root = root or Path(os.environ.get("BENCH_ROOT") or ROOT)
        self.workdir = Path(tempfile.mkdtemp(prefix="agentsite-bench-"))
        self.fake = FakeServer(chunks=chunks, delay=delay)
        self.app: App | None = None

    def __enter__(self) -> Stack:
        raise_nofile()
        try:
            self.fake.start(self.workdir)
            if self.want_app:
                self.app = App(self.workdir, root=self.root).setup(self.fake).start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.app:
            self.app.stop()
        self.fake.stop()
        if self.keep:
            print(f"(kept {self.workdir})")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def fmt_ms(x: float) -> str:
    return f"{x:.2f}"
