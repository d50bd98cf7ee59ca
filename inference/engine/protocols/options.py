"""The JSON types of the option names a protocol knows, checked before anything goes upstream.

Each adapter owns a table ``{name: OptionType}`` (``ProtocolAdapter.option_types``). A known
name holding a value of the wrong type is refused as a ``validation_error`` naming it
(``options.temperature: must be a number``) instead of being sent to a server that answers
with an error of its own (a 502). Names a table does not know pass through untouched: servers
have options of their own. Booleans are never numbers, and ``2.0`` is not an integer (JSON
Schema's ``integer`` of OpenAPI 3.0, and what Go servers such as Ollama decode into an int).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

OptionKind = Literal["number", "integer", "boolean", "string", "string_list", "object"]

_DESCRIBED: dict[OptionKind, str] = {
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "string": "a string",
    "string_list": "a list of strings",
    "object": "an object",
}


def _is(kind: OptionKind, value: Any) -> bool:
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "string_list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, dict)


def _schema(kind: OptionKind, choices: tuple[str, ...]) -> dict[str, Any]:
    if kind == "string_list":
        return {"type": "array", "items": {"type": "string"}}
    if kind == "string" and choices:
        return {"type": "string", "enum": list(choices)}
    return {"type": kind}


@dataclass(frozen=True, slots=True)
class OptionType:
    """What one option may hold: any of ``kinds``; a string only one of ``choices`` when given."""

    kinds: tuple[OptionKind, ...]
    choices: tuple[str, ...] = ()

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit (``"must be a number"``), or None."""
        if not any(_is(kind, value) for kind in self.kinds):
            return "must be " + " or ".join(_DESCRIBED[kind] for kind in self.kinds)
        if self.choices and isinstance(value, str) and value not in self.choices:
            return "must be one of " + ", ".join(f'"{c}"' for c in self.choices)
        return None

    def json_schema(self) -> dict[str, Any]:
        """The OpenAPI 3.0 schema of the values this type takes."""
        variants = [_schema(kind, self.choices) for kind in self.kinds]
        return variants[0] if len(variants) == 1 else {"oneOf": variants}


NUMBER = OptionType(("number",))
INTEGER = OptionType(("integer",))
BOOLEAN = OptionType(("boolean",))
STRING = OptionType(("string",))
STRING_LIST = OptionType(("string_list",))
OBJECT = OptionType(("object",))


def option_problems(table: Mapping[str, OptionType], options: Mapping[str, Any]) -> dict[str, str]:
    """``{name: problem}`` for every known name whose value does not fit; unknown names pass."""
    problems = {}
    for name, value in options.items():
        expected = table.get(name)
        problem = expected.problem(value) if expected is not None else None
        if problem:
            problems[name] = problem
    return problems
