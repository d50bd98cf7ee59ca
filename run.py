#!/usr/bin/env python3
"""One entry point for a fresh machine (stdlib only).

    python3 run.py [PORT | HOST:PORT]   set up (venv, install, migrate, static, admin) and serve
    python3 run.py test [pytest args]   set up for tests and run the whole suite (one worker per core)
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"


def sh(*args: str | Path, **kwargs) -> None:
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True, **kwargs)


def ensure_venv(extras: str) -> None:
    if not PY.exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed-{extras or 'base'}"
    pyproject = ROOT / "pyproject.toml"
    if not stamp.exists() or stamp.stat().st_mtime < pyproject.stat().st_mtime:
        print("installing dependencies …", flush=True)
        target = f".[{extras}]" if extras else "."
        sh(PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", target)
        stamp.touch()


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentsite.settings")
    if argv and argv[0] == "test":
        ensure_venv("test")
        args = argv[1:]
        if not any(a.startswith(("-n", "--numprocesses")) for a in args):
            # One worker per core, each test file whole on one worker (module fixtures such as a
            # live server are started once); most tests wait on servers, so this nearly halves the time.
            args = ["-n", "auto", "--dist", "loadfile", *args]
        return subprocess.run([str(PY), "-m", "pytest", *args], cwd=ROOT).returncode
    ensure_venv("")
    manage = [PY, "manage.py"]
    sh(*manage, "migrate", "--no-input", "-v", "0")
    sh(*manage, "collectstatic", "--no-input", "-v", "0")
    sh(*manage, "ensure_admin")
    os.execv(str(PY), [str(PY), "manage.py", "serve", *(argv[:1] or ["127.0.0.1:8080"])])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
