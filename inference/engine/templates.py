"""``{{placeholder}}`` prompt templates.

Rendering is one pass over the template text: substituted values are inserted verbatim and
never scanned again, so a user value containing ``{{x}}`` stays literal (no injection into
other variables, no exponential blow-up). A string is inserted as it is; any other value as its
JSON text (``true``, ``null``, ``2.5``, ``{"a": 1}``), never Python's (``True``, ``None``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import TemplateVariablesMissing

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")

MISSING_MESSAGE = "Template variables missing: {names}."


def template_variables(content: str) -> list[str]:
    """Variable names in order of first appearance."""
    seen: dict[str, None] = {}
    for m in _VAR.finditer(content):
        seen.setdefault(m.group(1), None)
    return list(seen)


def render_template(content: str, arguments: Mapping[str, Any]) -> str:
    missing = [name for name in template_variables(content) if name not in arguments]
    if missing:
        raise TemplateVariablesMissing(MISSING_MESSAGE.format(names=", ".join(missing)), detail={"missing": missing})

    def sub(m: re.Match[str]) -> str:
        value = arguments[m.group(1)]
        return value if isinstance(value, str) else _stringify(value)

    return _VAR.sub(sub, content)


def _stringify(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # not JSON (an SDK caller's own object)
        return str(value)
