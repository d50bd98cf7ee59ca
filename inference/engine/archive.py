"""Safe extraction of uploaded skill archives (``.zip`` of a folder holding ``SKILL.md``).

Uploads are untrusted: every entry is checked before anything is written (no absolute paths,
no ``..``, no links or special files, bounded file count and declared size), bytes are counted
again while extracting (declared sizes can lie: zip bombs), and everything lands in a temporary
folder that is renamed into place only once it is complete and parses as a skill. On any
failure the temporary folder is removed, so ``dest_root`` never holds a half-extracted skill.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO

from .skills import SKILL_FILENAMES, SkillError, parse_skill

MAX_FILES = 500
MAX_BYTES = 20 * 1024 * 1024
_CHUNK = 64 * 1024
_TMP_PREFIX = ".skill-upload-"
_OLD_PREFIX = ".skill-replaced-"
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
# macOS Finder adds these to every zip it makes; they are noise, not content.
_IGNORED_TOP = "__MACOSX"


def _entry_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The entry's path components after validation; raises ``SkillError`` for unsafe entries."""
    name = info.filename
    if "\x00" in name or "\\" in name:
        raise SkillError(f"Unsafe path in archive: {name!r}")
    if name.startswith("/") or _DRIVE_RE.match(name):
        raise SkillError(f"Absolute path in archive: {name!r}")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise SkillError(f"Path escapes the archive root: {name!r}")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise SkillError(f"Symbolic link in archive: {name!r}")
    if mode and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise SkillError(f"Special file in archive: {name!r}")
    if info.flag_bits & 0x1:
        raise SkillError(f"Encrypted entry in archive: {name!r}")
    return parts


def _skill_prefix(files: list[tuple[str, ...]]) -> tuple[str, ...]:
    """Where SKILL.md sits: the zip root, or inside exactly one top-level folder."""
    if any(parts in {(f,) for f in SKILL_FILENAMES} for parts in files):
        return ()
    tops = {parts[0] for parts in files}
    if len(tops) == 1:
        (top,) = tops
        if any(parts in {(top, f) for f in SKILL_FILENAMES} for parts in files):
            return (top,)
    raise SkillError("The archive has no SKILL.md at its root or inside a single top-level folder")


def extract_skill_zip(
    source: str | os.PathLike[str] | IO[bytes],
    dest_root: str | os.PathLike[str],
    *,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_BYTES,
) -> Path:
    """Extract a skill archive to ``dest_root/<skill name>`` and return that folder.

    An existing folder of the same name is replaced, but only after the new one is complete.
    Raises ``SkillError`` (HTTP 400) with the reason for anything unsafe or invalid.
    """
    dest_root = Path(dest_root)
    dest_root.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise SkillError("The upload is not a valid zip archive") from None

    with zf:
        entries: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
        file_count = declared = 0
        for info in zf.infolist():
            parts = _entry_parts(info)
            if not parts or parts[0] == _IGNORED_TOP:
                continue
            if not info.is_dir():
                file_count += 1
                declared += info.file_size
            # Directory entries count too (against twice the limit) so a zip of a million
            # empty folders is refused as well.
            if file_count > max_files or len(entries) >= 2 * max_files:
                raise SkillError(f"The archive holds more than {max_files} files")
            if declared > max_bytes:
                raise SkillError(f"The archive expands to more than {max_bytes} bytes")
            entries.append((info, parts))

        prefix = _skill_prefix([parts for info, parts in entries if not info.is_dir()])
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=dest_root))
        try:
            try:
                _extract_entries(zf, entries, prefix, tmp, max_bytes)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                raise SkillError("The archive has duplicate or conflicting entries") from None
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError) as exc:
                raise SkillError(f"The archive is corrupt or unsupported: {exc}") from None
            skill = parse_skill(tmp)
            if skill.name == tmp.name:  # parse_skill fell back to the folder name
                raise SkillError("SKILL.md has no 'name' in its frontmatter")
            if skill.name.startswith("."):
                raise SkillError(f"Unusable skill name {skill.name!r}")
            return _move_into_place(tmp, dest_root / skill.name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _extract_entries(
    zf: zipfile.ZipFile,
    entries: list[tuple[zipfile.ZipInfo, tuple[str, ...]]],
    prefix: tuple[str, ...],
    tmp: Path,
    max_bytes: int,
) -> None:
    written = 0
    for info, parts in entries:
        rel = parts[len(prefix) :]
        if not rel:
            continue
        target = tmp.joinpath(*rel)
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # Keep only the owner's exec bit: scripts/ must stay runnable, nothing setuid.
        mode = 0o755 if (info.external_attr >> 16) & 0o100 else 0o644
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out, zf.open(info) as src:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > max_bytes:  # declared sizes can lie
                    raise SkillError(f"The archive expands to more than {max_bytes} bytes")
                out.write(chunk)


def _move_into_place(tmp: Path, final: Path) -> Path:
    """Rename the finished folder into place, swapping out any previous version."""
    if not (final.exists() or final.is_symlink()):
        os.rename(tmp, final)
        return final
    old = Path(tempfile.mkdtemp(prefix=_OLD_PREFIX, dir=final.parent))
    parked = old / "previous"
    os.rename(final, parked)
    try:
        os.rename(tmp, final)
    except OSError:
        os.rename(parked, final)  # put the previous version back
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return final
