from __future__ import annotations

from typing import Any

from django import template

from core import bus

register = template.Library()


@register.simple_tag
def bus_status() -> dict[str, Any]:
    """This worker's bus figures (no I/O), for the admin index line."""
    return bus.status()
