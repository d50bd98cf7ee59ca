"""Skill registration (a folder on the server or an uploaded zip) and the built-in tools' rows."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import transaction

from core.errors import InvalidRequest, NotFound
from inference.engine import Skill as ParsedSkill
from inference.engine import bash_tool_config, extract_skill_zip, fetch_tool_config, parse_skill, skill_tool_config

from .models import Skill, Tool, ToolType

NOT_A_FOLDER = "No skill folder at {path!r}."


def skills_root() -> Path:
    return Path(settings.AGENTSITE["DATA_DIR"]) / "skills"


@transaction.atomic
def _upsert(parsed: ParsedSkill, *, uploaded: bool) -> Skill:
    skill, _ = Skill.objects.update_or_create(
        name=parsed.name,
        defaults={"description": parsed.description, "path": str(parsed.path), "uploaded": uploaded,
                  "allowed_tools": list(parsed.allowed_tools), "warnings": list(parsed.warnings)},
    )
    config = skill_tool_config(parsed)
    Tool.objects.update_or_create(
        tool_id=config.tool_id,
        defaults={"tool_type": ToolType.SKILL, "name": config.name, "description": config.description,
                  "parameters": dict(config.parameters), "skill": skill, "server": None, "remote_name": "",
                  "callable": "", "endpoint": ""},
    )
    return skill


def skill_register_path(*, path: str) -> Skill:
    folder = Path(path)
    if not folder.is_dir():
        raise InvalidRequest(NOT_A_FOLDER.format(path=path), code="invalid_skill")
    return _upsert(parse_skill(folder.resolve()), uploaded=False)


def skill_register_zip(*, upload: IO[bytes]) -> Skill:
    conf = settings.AGENTSITE
    root = skills_root()
    root.mkdir(parents=True, exist_ok=True)
    folder = extract_skill_zip(upload, root, max_files=conf["SKILL_MAX_FILES"], max_bytes=conf["SKILL_MAX_BYTES"])
    return _upsert(parse_skill(folder), uploaded=True)


def skill_delete(*, name: str) -> None:
    skill = Skill.objects.filter(name=name).first()
    if skill is None:
        raise NotFound(f"No skill named {name!r}.", code="not_found")
    path, uploaded = Path(skill.path), skill.uploaded
    skill.delete()
    if uploaded and path.is_relative_to(skills_root()):  # never delete a folder we didn't create
        shutil.rmtree(path, ignore_errors=True)


def builtins_sync(**kwargs: object) -> None:
    """Create the built-in tool rows if missing (post_migrate). bash starts disabled."""
    for config, enabled in ((bash_tool_config(), False), (fetch_tool_config(), True)):
        Tool.objects.get_or_create(
            tool_id=config.tool_id,
            defaults={"tool_type": ToolType.BUILTIN, "name": config.name, "description": config.description,
                      "parameters": dict(config.parameters), "enabled": enabled},
        )
