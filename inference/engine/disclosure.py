"""Progressive disclosure: which tools a skill brings once the model has activated it."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .skills import SkillError, allowed_tool_names, parse_skill, skill_read_tool_config
from .types import ToolConfig

log = logging.getLogger(__name__)


def skill_extra_tools(activation_tool: ToolConfig, lookup: Mapping[str, ToolConfig]) -> list[ToolConfig]:
    """The skill's scoped file-read tool, plus the registered tools its ``allowed-tools`` names.

    ``lookup`` maps lower-cased registered tool names and ids to tools. Names that match no
    registered tool (``Read``, ``Bash`` on a server where bash is not registered) are skipped:
    a skill can only ever widen the run to tools that exist and are enabled.
    """
    if not activation_tool.skill_path:
        return []
    try:
        skill = parse_skill(activation_tool.skill_path)
    except SkillError as exc:
        log.warning("skill %s could not be re-read for disclosure: %s", activation_tool.tool_id, exc.message)
        return []
    extra = [skill_read_tool_config(skill)]
    for name in allowed_tool_names(skill):
        tool = lookup.get(name.lower())
        if tool is not None and tool.tool_type != "skill":
            extra.append(tool)
    return extra
