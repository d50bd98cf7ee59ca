from __future__ import annotations

from django.contrib import admin

from . import services
from .models import PromptTemplate, PromptTemplateVersion


class VersionInline(admin.TabularInline):
    model = PromptTemplateVersion
    fields = readonly_fields = ("version", "content", "description", "created_at")
    extra = 0
    can_delete = False
    ordering = ["-version"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "description", "updated_at"]
    search_fields = ["name", "description", "content"]
    readonly_fields = ["id", "version", "created_at", "updated_at"]
    inlines = [VersionInline]

    def save_model(self, request, obj: PromptTemplate, form, change) -> None:
        # Same service as the API, so admin edits also bump the version and keep history.
        if change:
            services.template_update(template=obj, changes={f: form.cleaned_data[f] for f in form.changed_data})
        else:
            created = services.template_create(name=obj.name, content=obj.content, description=obj.description)
            obj.pk = created.pk
