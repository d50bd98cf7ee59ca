"""Staff rights beyond add/change/delete: ``registry.run_code`` for whatever runs code on the server.

A function tool by dotted path (``callable``), an MCP server with a ``command`` (a child
process), a skill whose folder holds scripts (``bash`` or a model could run them) and enabling
the built-in ``bash`` tool all run code as the server's account; registering them takes this
permission on top of the registry's own (superusers have every permission). The API and the
admin ask the same questions here.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from core.errors import PermissionDenied

RUN_CODE = "registry.run_code"
RUN_CODE_DENIED = "{what} runs code on the server: that takes the registry.run_code permission."

# Files a skill could have run: by extension, or any file with an executable bit.
SCRIPT_SUFFIXES = frozenset({".py", ".sh", ".bash", ".zsh", ".js", ".mjs", ".cjs", ".ts", ".rb", ".pl", ".php", ".ps1", ".lua"})


def require_run_code(user: Any, what: str) -> None:
    """403 ``permission_denied`` unless ``user`` holds ``registry.run_code``."""
    if not user.has_perm(RUN_CODE):
        raise PermissionDenied(RUN_CODE_DENIED.format(what=what))


def _is_script(name: str) -> bool:
    return Path(name).suffix.lower() in SCRIPT_SUFFIXES


def folder_has_scripts(folder: Path) -> bool:
    """Whether a skill folder holds a script (by extension) or an executable file."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if _is_script(name) or (path.is_file() and os.access(path, os.X_OK)):
                return True
    return False


def zip_has_scripts(upload: IO[bytes]) -> bool:
    """Whether a skill archive holds a script or a file stored executable; the upload is
    rewound for the extraction that follows. A broken archive is the extractor's to refuse."""
    try:
        with zipfile.ZipFile(upload) as archive:
            return any(
                _is_script(info.filename) or (info.external_attr >> 16) & 0o111
                for info in archive.infolist()
                if not info.is_dir()
            )
    except zipfile.BadZipFile:
        return False
    finally:
        upload.seek(0)


def mcp_configs_run_code(servers: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The names of the servers whose config starts a local process (``command``)."""
    return [name for name, config in servers.items() if config.get("command")]


def tool_change_runs_code(*, tool_id: str, data: Mapping[str, Any], enabled_before: bool | None) -> str | None:
    """What in a tool write runs code (for the message), or None: a new ``callable``, or
    ``bash`` switched on."""
    if data.get("callable"):
        return f"The callable {data['callable']!r}"
    if tool_id == "bash" and data.get("enabled") and not enabled_before:
        return "Enabling bash"
    return None


def names_of(groups: Iterable[Any]) -> list[str]:
    return sorted(g.name for g in groups)
