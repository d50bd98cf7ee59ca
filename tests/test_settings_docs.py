"""The README's settings table says which AGENTSITE_* settings apply at once and which need a
restart; it must agree with what the server does (registry/live_settings.py), for every
variable agentsite/settings.py reads."""

from __future__ import annotations

import re
from pathlib import Path

from registry import live_settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_server_setting_is_marked_in_the_readme_as_the_server_treats_it() -> None:
    read = set(re.findall(r'env_\w+\("(AGENTSITE_\w+)"', (ROOT / "agentsite" / "settings.py").read_text()))
    marked: dict[str, str] = {}
    for row in re.findall(r"^\| (`AGENTSITE_.*)$", (ROOT / "README.md").read_text(), re.M):
        cells = [c.strip() for c in row.split(" | ")]
        for name in re.findall(r"`(AGENTSITE_\w+)`", cells[0]):
            marked[name] = cells[2]
    assert read and read <= set(marked)
    for name in read:
        expected = "at once" if live_settings.is_live(name) else "restart"
        assert marked[name] == expected, name
        assert live_settings.is_live(name) != (name in live_settings.RESTART_ONLY), name
