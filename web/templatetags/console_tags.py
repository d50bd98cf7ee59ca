from __future__ import annotations

from django import template

from web.health import Check, console_health

register = template.Library()


@register.simple_tag
def health_checks() -> list[Check]:
    """The console index's health line (web/health.py)."""
    return console_health()
