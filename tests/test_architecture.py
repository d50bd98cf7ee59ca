"""The layering holds: no import cycle between the top-level apps, the kernel imports none of
them, sessions never import inference, and nothing under inference/engine imports Django.

Imports are read from the source (ast), so a lazy import inside a function counts as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = "inference.engine"
# The units of the layering. The engine is a framework-free library that lives inside
# inference's folder; it is its own unit, below every app (it imports only core.errors).
APPS = ("agentsite", "core", "accounts", "registry", "templates_app", "sessions", "usage", "agents", "inference", "web")


def _unit(module: str) -> str | None:
    if module == ENGINE or module.startswith(ENGINE + "."):
        return ENGINE
    top = module.split(".")[0]
    return top if top in APPS else None


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _sources() -> dict[str, list[tuple[Path, set[str]]]]:
    out: dict[str, list[tuple[Path, set[str]]]] = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            module = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
            package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
            unit = _unit(module)
            assert unit is not None
            out.setdefault(unit, []).append((path, _imports(path, package.removesuffix(".__init__"))))
    return out


SOURCES = _sources()


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {unit: set() for unit in SOURCES}
    for unit, files in SOURCES.items():
        for _, names in files:
            graph[unit].update(u for name in names if (u := _unit(name)) and u != unit)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def _importers_of(unit: str, target: str) -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p, names in SOURCES[unit] if any(_unit(n) == target for n in names))


def test_there_is_no_import_cycle_between_the_apps() -> None:
    assert _cycle(_graph()) is None


@pytest.mark.parametrize("other", [u for u in (*APPS, ENGINE) if u != "core"])
def test_core_imports_no_other_app(other: str) -> None:
    assert _importers_of("core", other) == []


@pytest.mark.parametrize("other", ["inference", ENGINE])
def test_sessions_do_not_import_inference(other: str) -> None:
    assert _importers_of("sessions", other) == []


@pytest.mark.parametrize("unit", [u for u in APPS if u != "agentsite"])
def test_no_app_imports_the_project_wiring(unit: str) -> None:
    assert _importers_of(unit, "agentsite") == []


def test_the_engine_imports_no_django_and_no_app_but_the_domain_errors() -> None:
    offenders = []
    for path, names in SOURCES[ENGINE]:
        for name in names:
            top = name.split(".")[0]
            if top in ("django", "rest_framework", "channels", "daphne") or (
                _unit(name) not in (None, ENGINE) and not name.startswith("core.errors")
            ):
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_the_checker_sees_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
