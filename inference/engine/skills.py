"""Agent Skills (``SKILL.md`` folders): parsing, progressive disclosure and scoped file reads.

A skill becomes two tools: ``skill.{name}`` (tier 1 is its description; calling it returns
tier 2, the instructions, plus the folder's listing) and ``skill.{name}.read`` (tier 3: one
bundled file, strictly inside the skill folder). Parsing is lenient as docs/protocols.md D.4 asks:
third-party skills often bend the spec, so we warn where we can and refuse only what we cannot
use (no description, unparseable YAML, no SKILL.md).
"""

from __future__ import annotations

import codecs
import html
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .errors import InvalidRequest
from .tools.base import ToolContext, ToolExecutor
from .types import ToolConfig, ToolResult, text_result

SKILL_FILENAMES = ("SKILL.md", "skill.md")
READ_MAX_BYTES = 256 * 1024
LISTING_MAX_FILES = 200
_LISTING_MAX_DEPTH = 6
_SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", "__MACOSX"})
_SPEC_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_TOOL_NAME_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_DESCRIPTION_MAX = 1024


class SkillError(InvalidRequest):
    code = "invalid_skill"


@dataclass(frozen=True, slots=True)
class Skill:
    name: str
    description: str
    path: str  # absolute path of the skill folder
    body: str
    allowed_tools: tuple[str, ...] = ()
    license: str | None = None
    compatibility: str | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()


# ---- parsing ---------------------------------------------------------------------------------


def find_skill_file(folder: str | os.PathLike[str]) -> Path:
    folder = Path(folder)
    for filename in SKILL_FILENAMES:
        candidate = folder / filename
        if candidate.is_file():
            return candidate
    raise SkillError(f"No SKILL.md in {folder}", detail={"path": str(folder)})


def parse_skill(path: str | os.PathLike[str]) -> Skill:
    """Parse a skill folder (or its ``SKILL.md``). Raises ``SkillError`` with the reason."""
    path = Path(path).expanduser().absolute()
    if path.is_file() and path.name in SKILL_FILENAMES:
        skill_file, folder = path, path.parent
    elif path.is_dir():
        folder = path
        skill_file = find_skill_file(folder)
    else:
        raise SkillError(f"Skill folder not found: {path}", detail={"path": str(path)})

    try:
        text = skill_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SkillError(f"Cannot read {skill_file}: {exc}", detail={"path": str(skill_file)}) from None

    warnings: list[str] = []
    frontmatter, body = _split_frontmatter(text, skill_file)
    data = _load_frontmatter(frontmatter, skill_file, warnings)

    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise SkillError(f"{skill_file}: the frontmatter has no 'description'", detail={"path": str(skill_file)})
    description = description.strip()
    if len(description) > _DESCRIPTION_MAX:
        # D-4: the description drives activation, so it is kept whole; only flagged.
        warnings.append(f"description is {len(description)} characters (the spec allows {_DESCRIPTION_MAX})")

    name = _parse_name(data.get("name"), folder, skill_file, warnings)
    return Skill(
        name=name,
        description=description,
        path=str(folder),
        body=body.strip(),
        allowed_tools=_parse_allowed_tools(data.get("allowed-tools"), warnings),
        license=_optional_str(data.get("license")),
        compatibility=_optional_str(data.get("compatibility")),
        metadata=_parse_metadata(data.get("metadata"), warnings),
        warnings=tuple(warnings),
    )


def _split_frontmatter(text: str, skill_file: Path) -> tuple[str, str]:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise SkillError(f"{skill_file}: no YAML frontmatter (the file must start with '---')", detail={"path": str(skill_file)})
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1 :])
    raise SkillError(f"{skill_file}: the YAML frontmatter is not closed by '---'", detail={"path": str(skill_file)})


# A top-level ``key: value`` line whose plain (unquoted) value itself holds ": " (D-2).
_UNQUOTED_COLON_RE = re.compile(r"^(?P<key>[A-Za-z0-9_-]+):[ \t]+(?P<value>[^'\"|>\[{&*!#\s].*:(?:\s.*)?)[ \t]*$")


def _quote_colon_values(frontmatter: str) -> str:
    def quote(line: str) -> str:
        m = _UNQUOTED_COLON_RE.match(line)
        if not m:
            return line
        value = m.group("value").replace("'", "''")
        return f"{m.group('key')}: '{value}'"

    return "\n".join(quote(line) for line in frontmatter.splitlines())


def _load_frontmatter(frontmatter: str, skill_file: Path, warnings: list[str]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(frontmatter)
    except yaml.YAMLError as first_error:
        try:
            data = yaml.safe_load(_quote_colon_values(frontmatter))
        except yaml.YAMLError:
            reason = str(first_error).replace("\n", " ")
            raise SkillError(f"{skill_file}: unparseable YAML frontmatter: {reason}", detail={"path": str(skill_file)}) from None
        warnings.append("frontmatter needed quoting of a value containing ': ' to parse")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SkillError(f"{skill_file}: the frontmatter is not a YAML mapping", detail={"path": str(skill_file)})
    return data


def _parse_name(raw: Any, folder: Path, skill_file: Path, warnings: list[str]) -> str:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        warnings.append(f"frontmatter has no 'name'; using the folder name {folder.name!r}")
        raw = folder.name
    name = str(raw).strip()
    # The name becomes a tool id and (for uploads) a folder name: refuse what cannot be either.
    if name in (".", "..") or any(c in name for c in "/\\") or any(ord(c) < 32 for c in name):
        raise SkillError(f"{skill_file}: unusable skill name {name!r}", detail={"path": str(skill_file)})
    if len(name) > 64 or not _SPEC_NAME_RE.match(name):
        warnings.append(f"name {name!r} does not follow the spec (1-64 lowercase letters, digits and single hyphens)")
    if name != folder.name:
        warnings.append(f"name {name!r} does not match its folder name {folder.name!r}")
    return name


def _split_tool_list(text: str) -> list[str]:
    """Split on whitespace outside parentheses: ``Bash(git add:*) Read`` is two entries."""
    entries: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char.isspace() and depth == 0:
            if current:
                entries.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        entries.append("".join(current))
    return entries


def _parse_allowed_tools(raw: Any, warnings: list[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):  # the spec's form (D-1)
        return tuple(_split_tool_list(raw))
    if isinstance(raw, list):  # common in the wild
        return tuple(str(item).strip() for item in raw if str(item).strip())
    warnings.append("'allowed-tools' is neither a string nor a list; ignored")
    return ()


def _parse_metadata(raw: Any, warnings: list[str]) -> Mapping[str, str]:
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, dict):
        warnings.append("'metadata' is not a mapping; ignored")
        return MappingProxyType({})
    return MappingProxyType({str(k): "" if v is None else str(v) for k, v in raw.items()})


def _optional_str(raw: Any) -> str | None:
    return None if raw is None else str(raw).strip() or None


def allowed_tool_names(skill: Skill) -> list[str]:
    """Tool names from ``allowed-tools`` without argument patterns (``Bash(git:*)`` → ``Bash``)."""
    names: list[str] = []
    for entry in skill.allowed_tools:
        name = entry.split("(", 1)[0].strip()
        if name and name not in names:
            names.append(name)
    return names


# ---- disclosure ------------------------------------------------------------------------------


def _walk_files(root: Path, limit: int) -> tuple[list[str], bool]:
    """Relative POSIX paths of bundled files, sorted; symlinked folders are not followed."""
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        depth = len(rel_dir.parts)
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".") and depth < _LISTING_MAX_DEPTH)
        for filename in sorted(filenames):
            if depth == 0 and filename in SKILL_FILENAMES:
                continue
            if filename.startswith("."):
                continue
            if len(files) >= limit:
                return files, True
            files.append((rel_dir / filename).as_posix())
    return files, False


def skill_file_listing(skill: Skill, *, limit: int = LISTING_MAX_FILES) -> list[str]:
    """Relative paths of the files bundled with the skill (not SKILL.md itself), at most ``limit``."""
    return _walk_files(Path(skill.path), limit)[0]


def skill_activation_text(skill: Skill) -> str:
    """Tier 2: what the model receives when it calls the skill's tool."""
    files, truncated = _walk_files(Path(skill.path), LISTING_MAX_FILES)
    parts = [
        f'<skill_content name="{html.escape(skill.name)}">\n{skill.body}\n</skill_content>',
        # D-5: relative paths in the body are relative to the skill folder, not our CWD.
        f"Skill base directory: {skill.path}\nRelative paths in these instructions are relative to this directory.",
    ]
    if files:
        listing = "\n".join(f"- {f}" for f in files)
        if truncated:
            listing += f"\n- … (listing stopped at {LISTING_MAX_FILES} files)"
        read_name = skill_read_tool_config(skill).name
        parts.append(
            f"Bundled files (not loaded):\n{listing}\n"
            f"To read one, call the `{read_name}` tool with its path relative to the skill folder."
        )
    return "\n\n".join(parts)


def _tool_name(prefix: str, name: str, suffix: str = "") -> str:
    """A model-facing name matching ``^[A-Za-z0-9_-]{1,64}$``; the skill name part gives way first."""
    budget = 64 - len(prefix) - len(suffix)
    return prefix + _TOOL_NAME_BAD_CHARS.sub("_", name)[:budget] + suffix


def skill_tool_config(skill: Skill) -> ToolConfig:
    return ToolConfig(
        tool_id=f"skill.{skill.name}",
        tool_type="skill",
        name=_tool_name("skill_", skill.name),
        description=skill.description,  # tier 1: only the description
        parameters={"type": "object", "properties": {}},
        skill=skill.name,
        skill_path=skill.path,
    )


def skill_read_tool_config(skill: Skill) -> ToolConfig:
    return ToolConfig(
        tool_id=f"skill.{skill.name}.read",
        tool_type="skill",
        name=_tool_name("read_", skill.name, "_file"),
        description=(
            f"Read a text file bundled with the '{skill.name}' skill, given its path relative to the skill "
            "folder (as listed when the skill was activated)."
        ),
        parameters={
            "type": "object",
            "properties": {"path": {"type": "string", "description": "path relative to the skill folder"}},
            "required": ["path"],
        },
        remote_name="read_file",
        skill=skill.name,
        skill_path=skill.path,
    )


# ---- scoped reads ----------------------------------------------------------------------------


def read_skill_file(skill: Skill, relative_path: str, *, max_bytes: int = READ_MAX_BYTES) -> str:
    """The text of one bundled file. Refuses anything that is or resolves outside the skill folder."""
    if not isinstance(relative_path, str) or not relative_path.strip() or "\x00" in relative_path:
        raise SkillError("'path' must be a non-empty relative path")
    candidate = Path(relative_path.strip())
    if candidate.is_absolute() or relative_path.startswith(("/", "\\")):
        raise SkillError(f"Absolute paths are not allowed: {relative_path!r}; give a path relative to the skill folder")
    if ".." in candidate.parts or ".." in relative_path.split("\\"):
        raise SkillError(f"'..' is not allowed in skill file paths: {relative_path!r}")

    root = Path(skill.path).resolve()
    try:
        target = (root / candidate).resolve(strict=True)
    except (OSError, RuntimeError):
        raise SkillError(f"No such file in the skill folder: {relative_path!r}") from None
    if not target.is_relative_to(root):  # e.g. a symlink pointing outside the folder
        raise SkillError(f"{relative_path!r} points outside the skill folder")
    if not target.is_file():
        raise SkillError(f"{relative_path!r} is not a regular file")

    size = target.stat().st_size
    with target.open("rb") as fh:
        data = fh.read(max_bytes)
    if b"\x00" in data[:8192]:
        raise SkillError(f"{relative_path!r} is a binary file; only text files can be read")
    decoder = codecs.getincrementaldecoder("utf-8")()
    truncated = size > len(data)
    try:
        # final=False when truncated: the cut may fall inside a multi-byte character.
        text = decoder.decode(data, final=not truncated)
    except UnicodeDecodeError:
        raise SkillError(f"{relative_path!r} is not UTF-8 text (binary file?)") from None
    if truncated:
        text += f"\n\n[truncated: the file is {size} bytes; only the first {len(data)} are shown]"
    return text


# ---- executor --------------------------------------------------------------------------------


class SkillExecutor(ToolExecutor):
    """Runs both skill tools; the skill is re-parsed when its SKILL.md changes."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, Skill]] = {}

    def _load(self, skill_path: str) -> Skill:
        mtime = find_skill_file(skill_path).stat().st_mtime_ns
        cached = self._cache.get(skill_path)
        if cached and cached[0] == mtime:
            return cached[1]
        skill = parse_skill(skill_path)
        self._cache[skill_path] = (mtime, skill)
        return skill

    async def execute(self, tool: ToolConfig, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        if not tool.skill_path:
            return text_result(tool.tool_id, f"Skill tool {tool.tool_id!r} has no skill folder configured", is_error=True)
        try:
            skill = self._load(tool.skill_path)
            if tool.remote_name == "read_file":
                return text_result(tool.tool_id, read_skill_file(skill, arguments.get("path", "")))
            return text_result(tool.tool_id, skill_activation_text(skill))
        except SkillError as exc:
            return text_result(tool.tool_id, exc.message, is_error=True)
        except OSError as exc:
            return text_result(tool.tool_id, f"Cannot read the skill: {exc}", is_error=True)


