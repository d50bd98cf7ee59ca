"""The management console. Secrets are entered write-only and always displayed masked."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.utils.html import format_html

from . import services
from .models import ApiKey, EnvVar, LLMModel, MCPServer, Skill, Tool


class SecretInput(forms.PasswordInput):
    """Never renders the stored value; an empty submission keeps the stored one."""

    def __init__(self) -> None:
        super().__init__(render_value=False, attrs={"autocomplete": "new-password", "placeholder": "unchanged"})


class KeepSecretIfBlank:
    secret_fields: tuple[str, ...] = ()

    def clean(self):  # noqa: ANN201
        cleaned = super().clean()  # type: ignore[misc]
        instance = self.instance  # type: ignore[attr-defined]
        for field in self.secret_fields:
            if not cleaned.get(field) and instance.pk:
                cleaned[field] = getattr(instance, field)
        return cleaned


class LLMModelForm(KeepSecretIfBlank, forms.ModelForm):
    secret_fields = ("api_key",)

    class Meta:
        model = LLMModel
        fields = "__all__"
        widgets = {"api_key": SecretInput()}


@admin.register(LLMModel)
class LLMModelAdmin(admin.ModelAdmin):
    form = LLMModelForm
    list_display = ["model_id", "display_name", "api_protocol", "model_name", "api_base", "masked_key", "enabled", "updated_at"]
    list_filter = ["api_protocol", "enabled", "supports_vision", "supports_audio"]
    search_fields = ["model_id", "model_name", "display_name", "api_base"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="API key")
    def masked_key(self, obj: LLMModel) -> str:
        return services.mask_secret(obj.api_key)


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    list_display = ["tool_id", "tool_type", "name", "server", "skill", "enabled", "updated_at"]
    list_filter = ["tool_type", "enabled", "server"]
    search_fields = ["tool_id", "name", "description", "callable", "endpoint"]
    list_select_related = ["server", "skill"]
    readonly_fields = ["created_at", "updated_at"]


class ToolInline(admin.TabularInline):
    model = Tool
    fields = ["tool_id", "name", "description", "enabled"]
    readonly_fields = ["tool_id", "name", "description"]
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(MCPServer)
class MCPServerAdmin(admin.ModelAdmin):
    list_display = ["name", "status_badge", "tool_count", "last_error_short", "last_connected_at", "updated_at"]
    list_filter = ["status"]
    search_fields = ["name", "last_error"]
    readonly_fields = ["status", "last_error", "last_connected_at", "created_at", "updated_at", "masked_config"]
    exclude = ["config"]
    inlines = [ToolInline]

    def get_queryset(self, request):  # noqa: ANN001, ANN201
        return super().get_queryset(request).annotate(_tool_count=Count("tools"))

    @admin.display(description="tools", ordering="_tool_count")
    def tool_count(self, obj: MCPServer) -> int:
        return obj._tool_count  # type: ignore[attr-defined]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: MCPServer) -> str:
        color = {"connected": "#1a7f37", "error": "#cf222e"}.get(obj.status, "#6e7781")
        return format_html('<b style="color:{}">{}</b>', color, obj.status)

    @admin.display(description="last error")
    def last_error_short(self, obj: MCPServer) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    @admin.display(description="config (secrets masked)")
    def masked_config(self, obj: MCPServer) -> str:
        config = dict(obj.config)
        for field in ("env", "headers"):
            if isinstance(config.get(field), dict):
                config[field] = services.mask_mapping(config[field])
        return format_html("<pre>{}</pre>", json.dumps(config, indent=2))


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "uploaded", "path", "updated_at"]
    list_filter = ["uploaded"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_at", "updated_at"]


class EnvVarForm(forms.ModelForm):
    class Meta:
        model = EnvVar
        fields = ["key", "value", "is_secret"]
        widgets = {"value": forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})}

    def clean(self):  # noqa: ANN201
        cleaned = super().clean()
        if self.instance.pk and not cleaned.get("value"):
            cleaned["value"] = self.instance.value
        return cleaned


@admin.register(EnvVar)
class EnvVarAdmin(admin.ModelAdmin):
    form = EnvVarForm
    list_display = ["key", "masked_value", "is_secret", "updated_at"]
    list_filter = ["is_secret"]
    search_fields = ["key"]

    @admin.display(description="value")
    def masked_value(self, obj: EnvVar) -> str:
        return services.mask_secret(obj.value) if obj.is_secret else obj.value

    def save_model(self, request, obj: EnvVar, form, change) -> None:  # noqa: ANN001
        services.env_set(key=obj.key, value=obj.value, is_secret=obj.is_secret)

    def delete_model(self, request, obj: EnvVar) -> None:  # noqa: ANN001
        services.env_delete(key=obj.key)

    def delete_queryset(self, request, queryset) -> None:  # noqa: ANN001
        for obj in queryset:
            services.env_delete(key=obj.key)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "is_active", "created_at", "last_used_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    fields = ["user", "name", "is_active", "prefix", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]

    def save_model(self, request, obj: ApiKey, form, change) -> None:  # noqa: ANN001
        if change:
            super().save_model(request, obj, form, change)
            return
        key, plaintext = ApiKey.generate(user=obj.user, name=obj.name)
        obj.pk, obj.prefix, obj.key_hash = key.pk, key.prefix, key.key_hash
        messages.warning(request, f"New API key (shown once, copy it now): {plaintext}")
