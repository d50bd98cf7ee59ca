"""Skill archive extraction: good layouts land atomically; every unsafe archive leaves nothing behind."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from inference.engine.archive import extract_skill_zip
from inference.engine.errors import InvalidRequest
from inference.engine.skills import SkillError, parse_skill

SKILL_MD = "---\nname: demo\ndescription: A demo skill for tests.\n---\n# Demo\nSee references/guide.md.\n"


def build_zip(entries: dict[str, bytes | str], *, symlinks: dict[str, str] | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    buf.seek(0)
    return buf


def assert_rejected(dest: Path, source, match: str, **limits) -> None:
    with pytest.raises(SkillError, match=match) as info:
        extract_skill_zip(source, dest, **limits)
    assert isinstance(info.value, InvalidRequest) and info.value.status == 400
    assert list(dest.iterdir()) == []  # nothing half-extracted, no temp folder left


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "skills"


def test_zip_with_skill_at_root(dest: Path) -> None:
    folder = extract_skill_zip(build_zip({"SKILL.md": SKILL_MD, "references/guide.md": "guide"}), dest)
    assert folder == dest / "demo"
    assert (folder / "references" / "guide.md").read_text() == "guide"
    skill = parse_skill(folder)
    assert skill.name == "demo" and skill.warnings == ()
    assert sorted(p.name for p in dest.iterdir()) == ["demo"]


def test_zip_with_one_top_level_folder_is_named_after_the_skill(dest: Path, tmp_path: Path) -> None:
    path = tmp_path / "upload.zip"
    path.write_bytes(
        build_zip(
            {"whatever-1.2/SKILL.md": SKILL_MD, "whatever-1.2/scripts/run.sh": "echo hi", "__MACOSX/._SKILL.md": "junk"}
        ).getvalue()
    )
    folder = extract_skill_zip(path, dest)
    assert folder == dest / "demo"
    assert (folder / "scripts" / "run.sh").read_text() == "echo hi"
    assert not (folder / "__MACOSX").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["demo"]


def test_existing_skill_is_replaced_only_by_a_complete_one(dest: Path) -> None:
    extract_skill_zip(build_zip({"SKILL.md": SKILL_MD, "old.txt": "old"}), dest)
    # A broken upload of the same skill leaves the installed version untouched.
    broken = build_zip({"SKILL.md": SKILL_MD, "../evil": "x"})
    with pytest.raises(SkillError):
        extract_skill_zip(broken, dest)
    assert (dest / "demo" / "old.txt").read_text() == "old"
    # A good one replaces it wholesale.
    folder = extract_skill_zip(build_zip({"SKILL.md": SKILL_MD, "new.txt": "new"}), dest)
    assert (folder / "new.txt").exists() and not (folder / "old.txt").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["demo"]


def test_executable_bit_kept_setuid_dropped(dest: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("SKILL.md", SKILL_MD)
        info = zipfile.ZipInfo("scripts/run.sh")
        info.external_attr = (stat.S_IFREG | stat.S_ISUID | 0o777) << 16
        zf.writestr(info, "echo hi")
    buf.seek(0)
    mode = (extract_skill_zip(buf, dest) / "scripts" / "run.sh").stat().st_mode
    assert mode & 0o100 and not mode & (stat.S_ISUID | 0o002)


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ({"SKILL.md": SKILL_MD, "../x": "escape"}, "escapes the archive root"),
        ({"SKILL.md": SKILL_MD, "refs/../../x": "escape"}, "escapes the archive root"),
        ({"SKILL.md": SKILL_MD, "/etc/cron.d/x": "abs"}, "Absolute path"),
        ({"SKILL.md": SKILL_MD, "C:/x": "abs"}, "Absolute path"),
        ({"SKILL.md": SKILL_MD, "a\\..\\..\\x": "x"}, "Unsafe path"),
        ({"README.md": "no skill here"}, "no SKILL.md"),
        ({"a/SKILL.md": SKILL_MD, "b/SKILL.md": SKILL_MD}, "no SKILL.md"),
        ({"SKILL.md": "---\nname: demo\n---\nno description"}, "no 'description'"),
        ({"SKILL.md": "---\ndescription: nameless\n---\nbody"}, "no 'name'"),
        ({"SKILL.md": "---\nname: .hidden\ndescription: d\n---\nbody"}, "Unusable skill name"),
    ],
)
def test_unsafe_or_invalid_archives_are_rejected(dest: Path, entries: dict[str, str], match: str) -> None:
    assert_rejected(dest, build_zip(entries), match)


def test_symlink_entry_is_rejected(dest: Path) -> None:
    assert_rejected(dest, build_zip({"SKILL.md": SKILL_MD}, symlinks={"link": "/etc/passwd"}), "Symbolic link")


def test_too_many_files(dest: Path) -> None:
    entries = {"SKILL.md": SKILL_MD} | {f"f{i}.txt": "x" for i in range(10)}
    assert_rejected(dest, build_zip(entries), "more than 5 files", max_files=5)


def test_too_many_declared_bytes(dest: Path) -> None:
    # Highly compressible: small on the wire, large once expanded.
    assert_rejected(
        dest, build_zip({"SKILL.md": SKILL_MD, "big.txt": b"\0" * 200_000}), "more than 100000 bytes", max_bytes=100_000
    )


def test_declared_sizes_that_lie_are_caught_while_extracting(dest: Path) -> None:
    buf = build_zip({"SKILL.md": SKILL_MD, "bomb.txt": b"A" * 300_000})
    # Patch the declared uncompressed size in both headers to claim 10 bytes.
    data = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("bomb.txt")
        local_offset = info.header_offset
    real = (300_000).to_bytes(4, "little")
    fake = (10).to_bytes(4, "little")
    data[local_offset + 22 : local_offset + 26] = fake  # local file header: uncompressed size
    central = data.rfind(b"PK\x01\x02")  # last central directory entry is bomb.txt
    assert data[central + 24 : central + 28] == real
    data[central + 24 : central + 28] = fake
    # zipfile stops at the declared size and fails the CRC; the running byte count backs it up.
    with pytest.raises(SkillError) as info:
        extract_skill_zip(io.BytesIO(bytes(data)), dest, max_bytes=100_000)
    assert "more than 100000 bytes" in info.value.message or "corrupt" in info.value.message
    assert list(dest.iterdir()) == []


def test_not_a_zip(dest: Path, tmp_path: Path) -> None:
    assert_rejected(dest, io.BytesIO(b"this is not a zip archive at all"), "not a valid zip")
    fake = tmp_path / "fake.zip"
    fake.write_text("PK but not really")
    assert_rejected(dest, fake, "not a valid zip")


def test_duplicate_entries_are_rejected(dest: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("SKILL.md", SKILL_MD)
        with pytest.warns(UserWarning):
            zf.writestr("SKILL.md", SKILL_MD)
    buf.seek(0)
    assert_rejected(dest, buf, "duplicate or conflicting")
