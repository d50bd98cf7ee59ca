"""The engine stays framework-free: importing all of it must not load Django."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_engine_imports_without_django() -> None:
    modules = sorted(p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
                     for p in (ROOT / "inference" / "engine").rglob("*.py"))
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print([m for m in sys.modules if m.startswith(('django', 'rest_framework'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
