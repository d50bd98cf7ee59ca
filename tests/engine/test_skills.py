"""Skills: parsing (on the real public skills and on hand-made edge cases), disclosure, scoped reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inference.engine import default_executors
from inference.engine.errors import InvalidRequest
from inference.engine.skills import (
    SkillError,
    SkillExecutor,
    allowed_tool_names,
    parse_skill,
    skill_activation_text,
    skill_file_listing,
    skill_read_tool_config,
    skill_tool_config,
)
from inference.engine.tools.base import ToolContext, executor_kind

SHARED = Path(__file__).resolve().parents[1] / "skills" / "data"  # copies of two public anthropics/skills skills
INTERNAL_COMMS = SHARED / "internal-comms"
THEME_FACTORY = SHARED / "theme-factory"
TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def make_skill(root: Path, folder: str, frontmatter: str, body: str = "# Body\nDo things.", filename: str = "SKILL.md") -> Path:
    path = root / folder
    path.mkdir(parents=True, exist_ok=True)
    (path / filename).write_text(f"---\n{frontmatter}\n---\n\n{body}\n", encoding="utf-8")
    return path


# ---- the real skills -------------------------------------------------------------------------


@pytest.mark.parametrize("folder", [INTERNAL_COMMS, THEME_FACTORY])
def test_real_skills_parse(folder: Path) -> None:
    skill = parse_skill(folder)
    assert skill.name == folder.name
    assert skill.description and len(skill.description) <= 1024
    assert skill.path == str(folder) and Path(skill.path).is_absolute()
    assert skill.license == "Complete terms in LICENSE.txt"
    assert skill.warnings == ()
    assert not skill.body.startswith("---") and "description:" not in skill.body


def test_parse_accepts_the_skill_md_file_itself() -> None:
    assert parse_skill(INTERNAL_COMMS / "SKILL.md").name == "internal-comms"


def test_activation_text_has_body_base_dir_and_listing_without_contents() -> None:
    skill = parse_skill(INTERNAL_COMMS)
    text = skill_activation_text(skill)
    assert text.startswith('<skill_content name="internal-comms">\n## When to use this skill')
    assert "</skill_content>" in text
    assert "license: Complete terms" not in text  # frontmatter stripped
    assert str(INTERNAL_COMMS) in text  # absolute base directory (docs/protocols.md D-5)
    assert "- examples/faq-answers.md" in text
    faq = (INTERNAL_COMMS / "examples" / "faq-answers.md").read_text()
    assert faq.splitlines()[1] not in text  # listed, not loaded
    assert "read_internal-comms_file" in text


def test_file_listing_is_relative_sorted_and_excludes_skill_md() -> None:
    listing = skill_file_listing(parse_skill(THEME_FACTORY))
    assert "SKILL.md" not in listing
    assert "themes/ocean-depths.md" in listing and "LICENSE.txt" in listing
    assert listing == sorted(listing)
    assert all(not p.startswith("/") for p in listing)


def test_file_listing_skips_vcs_and_is_bounded(tmp_path: Path) -> None:
    folder = make_skill(tmp_path, "many", "name: many\ndescription: d")
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("x")
    (folder / "node_modules").mkdir()
    (folder / "node_modules" / "m.js").write_text("x")
    for i in range(10):
        (folder / f"f{i}.txt").write_text("x")
    skill = parse_skill(folder)
    assert skill_file_listing(skill) == [f"f{i}.txt" for i in range(10)]
    assert len(skill_file_listing(skill, limit=3)) == 3


def test_tool_configs() -> None:
    skill = parse_skill(THEME_FACTORY)
    tool = skill_tool_config(skill)
    assert tool.tool_id == "skill.theme-factory" and tool.tool_type == "skill"
    assert TOOL_NAME_RE.match(tool.name) and tool.name == "skill_theme-factory"
    assert tool.description == skill.description
    assert tool.parameters == {"type": "object", "properties": {}}
    assert tool.skill == "theme-factory" and tool.skill_path == str(THEME_FACTORY)
    read = skill_read_tool_config(skill)
    assert read.tool_id == "skill.theme-factory.read" and read.remote_name == "read_file"
    assert read.name == "read_theme-factory_file" and TOOL_NAME_RE.match(read.name)
    assert read.parameters["required"] == ["path"]


def test_tool_names_are_sanitised_and_bounded(tmp_path: Path) -> None:
    skill = parse_skill(make_skill(tmp_path, "x", f"name: {'a.b' * 30}\ndescription: d"))
    for tool in (skill_tool_config(skill), skill_read_tool_config(skill)):
        assert TOOL_NAME_RE.match(tool.name), tool.name
    assert skill_read_tool_config(skill).name.endswith("_file")


# ---- executor: activation and scoped reads --------------------------------------------------


async def call(tool, arguments=None):
    return await SkillExecutor().execute(tool, arguments or {}, ToolContext())


async def test_executor_is_registered_and_activates() -> None:
    tool = skill_tool_config(parse_skill(INTERNAL_COMMS))
    assert isinstance(default_executors()[executor_kind(tool)], SkillExecutor)
    result = await call(tool)
    assert not result.is_error
    assert result.content[0]["text"] == skill_activation_text(parse_skill(INTERNAL_COMMS))


async def test_read_tool_reads_a_bundled_file() -> None:
    read = skill_read_tool_config(parse_skill(INTERNAL_COMMS))
    result = await call(read, {"path": "examples/faq-answers.md"})
    assert not result.is_error
    assert result.content[0]["text"] == (INTERNAL_COMMS / "examples" / "faq-answers.md").read_text()


@pytest.mark.parametrize(
    "path", ["../theme-factory/SKILL.md", "/etc/passwd", "examples/../../theme-factory/SKILL.md", "", "nope.md", "examples"]
)
async def test_read_tool_refuses_escapes_and_non_files(path: str) -> None:
    read = skill_read_tool_config(parse_skill(INTERNAL_COMMS))
    result = await call(read, {"path": path})
    assert result.is_error
    assert "root:" not in result.content[0]["text"]


async def test_read_tool_refuses_symlink_pointing_outside(tmp_path: Path) -> None:
    folder = make_skill(tmp_path, "linky", "name: linky\ndescription: d")
    (tmp_path / "secret.txt").write_text("top secret")
    (folder / "inside.txt").write_text("fine")
    (folder / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "alias.txt").symlink_to(folder / "inside.txt")
    read = skill_read_tool_config(parse_skill(folder))
    refused = await call(read, {"path": "escape.txt"})
    assert refused.is_error and "outside" in refused.content[0]["text"]
    assert "top secret" not in refused.content[0]["text"]
    assert (await call(read, {"path": "alias.txt"})).content[0]["text"] == "fine"  # inside → fine


async def test_read_tool_refuses_binary_and_caps_size(tmp_path: Path) -> None:
    folder = make_skill(tmp_path, "bin", "name: bin\ndescription: d")
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (folder / "big.txt").write_text("é" * 200_000)  # 400 kB of 2-byte characters
    read = skill_read_tool_config(parse_skill(folder))
    binary = await call(read, {"path": "logo.png"})
    assert binary.is_error and "binary" in binary.content[0]["text"]
    big = await call(read, {"path": "big.txt"})
    assert not big.is_error
    text = big.content[0]["text"]
    assert "[truncated: the file is 400000 bytes" in text
    assert len(text.encode()) < 256 * 1024 + 200


async def test_executor_picks_up_edits(tmp_path: Path) -> None:
    folder = make_skill(tmp_path, "live", "name: live\ndescription: d", body="old body")
    tool = skill_tool_config(parse_skill(folder))
    assert "old body" in (await call(tool)).content[0]["text"]
    make_skill(tmp_path, "live", "name: live\ndescription: d", body="new body, longer")
    assert "new body" in (await call(tool)).content[0]["text"]


async def test_executor_reports_a_broken_skill_as_error_result(tmp_path: Path) -> None:
    folder = make_skill(tmp_path, "gone", "name: gone\ndescription: d")
    tool = skill_tool_config(parse_skill(folder))
    (folder / "SKILL.md").unlink()
    result = await call(tool)
    assert result.is_error and "SKILL.md" in result.content[0]["text"]


# ---- frontmatter edge cases -----------------------------------------------------------------


def test_unquoted_colon_in_description_is_recovered(tmp_path: Path) -> None:
    folder = make_skill(tmp_path, "colon", "name: colon\ndescription: Use when: the user asks. Note: it's fine\nlicense: MIT")
    skill = parse_skill(folder)
    assert skill.description == "Use when: the user asks. Note: it's fine"
    assert skill.license == "MIT"
    assert any("quoting" in w for w in skill.warnings)


def test_allowed_tools_as_string_with_patterns(tmp_path: Path) -> None:
    folder = make_skill(
        tmp_path, "tools", "name: tools\ndescription: d\nallowed-tools: Bash(git add:*) Bash(python:*) Read  fetch"
    )
    skill = parse_skill(folder)
    assert skill.allowed_tools == ("Bash(git add:*)", "Bash(python:*)", "Read", "fetch")
    assert allowed_tool_names(skill) == ["Bash", "Read", "fetch"]


def test_allowed_tools_as_list(tmp_path: Path) -> None:
    folder = make_skill(tmp_path, "tools", "name: tools\ndescription: d\nallowed-tools:\n  - Read\n  - Bash(ls:*)")
    skill = parse_skill(folder)
    assert skill.allowed_tools == ("Read", "Bash(ls:*)")
    assert allowed_tool_names(skill) == ["Read", "Bash"]


def test_optional_fields_and_unknown_keys(tmp_path: Path) -> None:
    folder = make_skill(
        tmp_path,
        "full",
        'name: full\ndescription: d\ncompatibility: Python 3.11+\nmetadata:\n  author: me\n  version: "1.0"\n  n: 2\n'
        "disable-model-invocation: true\nsomething-else: [1, 2]",
    )
    skill = parse_skill(folder)
    assert skill.compatibility == "Python 3.11+"
    assert dict(skill.metadata) == {"author": "me", "version": "1.0", "n": "2"}
    assert skill.warnings == ()


def test_lowercase_skill_md_is_accepted(tmp_path: Path) -> None:
    folder = make_skill(tmp_path, "lower", "name: lower\ndescription: d", filename="skill.md")
    assert parse_skill(folder).name == "lower"


def test_name_mismatch_and_invalid_name_warn(tmp_path: Path) -> None:
    skill = parse_skill(make_skill(tmp_path, "folder-name", "name: Other_Name\ndescription: d"))
    assert skill.name == "Other_Name"
    assert any("does not match its folder" in w for w in skill.warnings)
    assert any("does not follow the spec" in w for w in skill.warnings)


def test_missing_name_falls_back_to_folder(tmp_path: Path) -> None:
    skill = parse_skill(make_skill(tmp_path, "nameless", "description: d"))
    assert skill.name == "nameless" and any("no 'name'" in w for w in skill.warnings)


@pytest.mark.parametrize(
    ("frontmatter", "reason"),
    [
        ("name: x", "no 'description'"),
        ("name: x\ndescription: '   '", "no 'description'"),
        ("name: x\ndescription: [unclosed", "unparseable YAML"),
        ("name: x\n  description: bad: indent: here\n - list", "unparseable YAML"),
        ("- just\n- a list", "not a YAML mapping"),
        ("name: ../evil\ndescription: d", "unusable skill name"),
    ],
)
def test_bad_frontmatter_raises(tmp_path: Path, frontmatter: str, reason: str) -> None:
    folder = make_skill(tmp_path, "x", frontmatter)
    with pytest.raises(SkillError, match=re.escape(reason)) as info:
        parse_skill(folder)
    assert isinstance(info.value, InvalidRequest)
    assert info.value.code == "invalid_skill" and info.value.status == 400


def test_missing_frontmatter_and_missing_file(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    with pytest.raises(SkillError, match="No SKILL.md"):
        parse_skill(folder)
    (folder / "SKILL.md").write_text("# Just markdown\n")
    with pytest.raises(SkillError, match="no YAML frontmatter"):
        parse_skill(folder)
    (folder / "SKILL.md").write_text("---\nname: plain\ndescription: d\n")
    with pytest.raises(SkillError, match="not closed"):
        parse_skill(folder)
    with pytest.raises(SkillError, match="not found"):
        parse_skill(tmp_path / "absent")
