"""The Group admin page, with what the group may use (models, MCP servers, tools, skills)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.models import Group
from django.db.models import Model
from django.urls import reverse
from django.utils.html import format_html, format_html_join

USABLE = (("Models", "usable_models"), ("MCP servers (all their tools)", "usable_mcp_servers"),
          ("Tools", "usable_tools"), ("Skills", "usable_skills"))


def _link(row: Model) -> tuple[str, str]:
    meta = row._meta  # the admin's own escaping of the key: ids may hold "_" followed by hex
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[quote(row.pk)]), str(row)


class GroupAdmin(BaseGroupAdmin):
    readonly_fields = ["may_use"]

    @admin.display(description="May use")
    def may_use(self, group: Group) -> str:
        """Entries naming this group; entries naming no group are open to everyone and not listed."""
        if not group.pk:
            return "—"
        parts = []
        for label, related in USABLE:
            rows = list(getattr(group, related).all()[:200])
            if rows:
                links = format_html_join(", ", '<a href="{}">{}</a>', (_link(r) for r in rows))
                parts.append(format_html("<p><strong>{}</strong>: {}</p>", label, links))
        if not parts:
            return "Nothing restricted to this group (it uses what is open to everyone)."
        return format_html_join("", "{}", ((p,) for p in parts))


def register() -> None:
    """Replace Django's Group page with this one (called once, from registry/admin.py)."""
    if admin.site.is_registered(Group):
        admin.site.unregister(Group)
    admin.site.register(Group, GroupAdmin)
