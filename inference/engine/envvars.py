"""``${VAR}`` / ``${VAR:-default}`` references, as in Claude Code's .mcp.json and our registries."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Lookup = Callable[[str], "str | None"]


def find_vars(value: Any) -> set[str]:
    """Names referenced anywhere in a string or a nested list/dict of strings."""
    if isinstance(value, str):
        return {m.group(1) for m in _REF.finditer(value)}
    if isinstance(value, dict):
        return set().union(*(find_vars(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(find_vars(v) for v in value)) if value else set()
    return set()


def expand_vars(value: Any, lookup: Lookup = os.environ.get) -> Any:
    """Replace references in strings (recursively in lists/dicts). Unset without default -> ""."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            found = lookup(m.group(1))
            if found is None or (found == "" and m.group(2) is not None):
                return m.group(2) or ""
            return found

        return _REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_vars(v, lookup) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [expand_vars(v, lookup) for v in value]
    return value
