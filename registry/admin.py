"""The management console. Secrets are entered write-only and always displayed masked."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import models as db_models
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin_ids import LabelledFields, written
from inference.engine import DomainError, find_skill_file, normalize_server_config, protocol_choices

from . import admin_groups, env_store, live_settings, mcp_services, model_services, rights, services, skill_services
from .models import EnvVar, LLMModel, MCPServer, Skill, Tool

# Who may use an entry: a list of checkboxes, one per group. Django's two-pane filter widget
# would do, but its search icon carries an aria-label that axe reports as serious.
GROUP_PICKER: dict[Any, dict[str, Any]] = {db_models.ManyToManyField: {"widget": forms.CheckboxSelectMultiple}}


class SecretInput(forms.PasswordInput):
    """Never renders the stored value; an empty submission keeps the stored one."""

    def __init__(self) -> None:
        super().__init__(render_value=False, attrs={"autocomplete": "new-password", "placeholder": "unchanged"})


class KeepSecretIfBlank(forms.ModelForm):
    """A secret field left blank keeps the stored value (the form never shows it)."""

    secret_fields: tuple[str, ...] = ()

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        for field in self.secret_fields:
            if not cleaned.get(field) and self.instance.pk:
                cleaned[field] = getattr(self.instance, field)
        return cleaned


class LLMModelForm(KeepSecretIfBlank):
    secret_fields = ("api_key",)

    class Meta:
        model = LLMModel
        fields = "__all__"
        widgets = {"api_key": SecretInput()}
        help_texts = {
            "api_protocol": "openai: any OpenAI-compatible server (OpenAI, vLLM, llama.cpp's server, LM Studio, "
                            "Ollama's /v1); the base includes /v1. ollama: Ollama's native API; the base is the "
                            "server root (http://localhost:11434).",
        }


@admin.register(LLMModel)
class LLMModelAdmin(LabelledFields):
    form = LLMModelForm
    ids_as_written = ("model_id",)
    labels = {"api_base": "API base", "api_key": "API key", "api_protocol": "API protocol"}
    formfield_overrides = GROUP_PICKER  # who may use it: none chosen = every signed-in user
    list_display = ["model_id", "display_name", "api_protocol", "model_name", "api_base", "masked_key", "enabled", "updated_at"]
    list_filter = ["api_protocol", "enabled", "supports_vision", "supports_audio", "tool_call_format"]
    search_fields = ["model_id", "model_name", "display_name", "api_base"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="API key")
    def masked_key(self, obj: LLMModel) -> str:
        return services.mask_secret(obj.api_key)

    # ---- console: "test connection" and "detect models" ----------------------------------

    actions = ["test_connection"]
    TEST_LIMIT = 10  # each test is a real request to a model server; keep one click bounded
    DETECT_SESSION_KEY = "registry_llmmodel_detect"
    DETECTED_SESSION_KEY = "registry_llmmodel_detected"  # what the server said about each model

    class DetectForm(forms.Form):
        api_protocol = forms.ChoiceField(choices=protocol_choices, initial="ollama", label="Protocol")
        api_base = forms.CharField(
            max_length=500, initial="http://localhost:11434", label="Base URL",
            help_text="Ollama: the server root (http://localhost:11434). OpenAI-compatible: including /v1.",
        )
        api_key = forms.CharField(
            required=False, max_length=500, label="API key", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
            help_text="Optional; a literal key or ${ENV_VAR}. Stored with the models you register.",
        )

    @admin.action(description="Test connection to the selected models")
    def test_connection(self, request: HttpRequest, queryset) -> None:
        models = list(queryset[: self.TEST_LIMIT + 1])
        if len(models) > self.TEST_LIMIT:
            self.message_user(request, f"Testing the first {self.TEST_LIMIT} models only.", messages.WARNING)
        for model in models[: self.TEST_LIMIT]:
            ok, outcome = model_services.model_test_connection(model=model)
            level = messages.SUCCESS if ok else messages.ERROR
            self.message_user(request, f"{model.model_id}: {'OK, ' if ok else 'failed: '}{outcome}", level)

    def get_urls(self):
        detect = path("detect/", self.admin_site.admin_view(self.detect_view), name="registry_llmmodel_detect")
        return [detect, *super().get_urls()]

    def _register_detected(self, request: HttpRequest) -> HttpResponse:
        params = request.session.get(self.DETECT_SESSION_KEY)
        chosen = request.POST.getlist("model_name")
        if not params or not chosen:
            self.message_user(request, "Choose at least one model (detect again if this page is old).", messages.WARNING)
            return redirect(request.path)
        created = services.models_register_detected(
            api_protocol=params["api_protocol"],
            api_base=params["api_base"],
            api_key=params.get("api_key", ""),
            model_names=chosen,
            detected=request.session.get(self.DETECTED_SESSION_KEY) or {},
        )
        request.session.pop(self.DETECT_SESSION_KEY, None)
        request.session.pop(self.DETECTED_SESSION_KEY, None)
        if created:
            self.message_user(request, f"Registered {len(created)} model(s): {', '.join(created)}.", messages.SUCCESS)
        else:
            self.message_user(request, "Those models were already registered.", messages.INFO)
        return redirect(reverse("admin:registry_llmmodel_changelist"))

    def detect_view(self, request: HttpRequest) -> HttpResponse:
        """Ask a server which models it offers, then register the chosen ones in one click."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST" and "register" in request.POST:
            return self._register_detected(request)
        form = self.DetectForm(request.POST if request.method == "POST" else None)
        found: list[dict] | None = None
        error = ""
        if form.is_bound and form.is_valid():
            params = {**form.cleaned_data, "api_base": form.cleaned_data["api_base"].strip().rstrip("/")}
            try:
                found = model_services.models_detect(**params)
            except DomainError as exc:
                error = exc.message
            else:
                # The key stays on the server between the two steps, never echoed into the page.
                request.session[self.DETECT_SESSION_KEY] = params
                request.session[self.DETECTED_SESSION_KEY] = {m["model_name"]: m for m in found}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Detect models",
            "form": form,
            "found": found,
            "error": error,
        }
        return TemplateResponse(request, "admin/registry/llmmodel/detect.html", context)


@admin.register(Tool)
class ToolAdmin(LabelledFields):
    ids_as_written = ("tool_id",)
    list_display = ["tool_id", "tool_type", "name", "server", "skill", "enabled", "updated_at"]
    list_filter = ["tool_type", "enabled", "server"]
    search_fields = ["tool_id", "name", "description", "callable", "endpoint"]
    list_select_related = ["server", "skill"]
    readonly_fields = ["created_at", "updated_at"]
    formfield_overrides = GROUP_PICKER

    def save_model(self, request, obj: Tool, form, change) -> None:
        row = Tool.objects.filter(pk=obj.pk).values("callable", "enabled").first() if change else None
        before: dict[str, Any] = dict(row) if row else {}
        changed = {"callable": obj.callable} if obj.callable and obj.callable != before.get("callable") else {}
        what = rights.tool_change_runs_code(tool_id=obj.tool_id, data={**changed, "enabled": obj.enabled},
                                            enabled_before=before.get("enabled"))
        _require_run_code(request, what)
        super().save_model(request, obj, form, change)


def _require_run_code(request: HttpRequest, what: str | None) -> None:
    """The admin's side of registry.run_code (the API's is registry/rights.py): a 403 page."""
    if what and not request.user.has_perm(rights.RUN_CODE):
        raise PermissionDenied(rights.RUN_CODE_DENIED.format(what=what))


class ToolInline(admin.TabularInline):
    model = Tool
    fields = ["tool", "name", "description", "enabled"]
    readonly_fields = ["tool", "name", "description"]
    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description=written("tool_id"))
    def tool(self, obj: Tool) -> str:
        return obj.tool_id


class MCPServerForm(forms.ModelForm):
    """The config as JSON. When editing, ``env`` and ``headers`` values show masked; a masked
    value sent back unchanged keeps the stored one, so a secret never appears in the page."""

    # Stored as the config's "sampling" key (as POST /v1/tools/mcp takes it); the box wins over the JSON.
    sampling = forms.BooleanField(
        required=False,
        label="Allow sampling",
        help_text="Let the server ask the model of the run that called its tool (MCP sampling); "
                  "counted as that run's usage. Off: the server is told sampling is not supported.",
    )

    class Meta:
        model = MCPServer
        fields = ["name", "config", "sampling", "allowed_groups"]
        help_texts = {"config": 'One server in the mcpServers form, e.g. {"command": "uvx", "args": ["mcp-server-time"]}. '
                                'Values under "env" and "headers" show masked: leave one as it is to keep it.'}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["config"] = services.mask_mcp_config(self.instance.config)
            self.initial["sampling"] = self.instance.config.get("sampling") is True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        config = cleaned.get("config")
        if isinstance(config, dict):
            config.pop("sampling", None)
            if cleaned.get("sampling"):
                config["sampling"] = True
        return cleaned

    def clean_config(self) -> dict:
        config = self.cleaned_data["config"]
        if not isinstance(config, dict):
            raise forms.ValidationError("The config must be a JSON object.")
        stored = self.instance.config if self.instance.pk else {}
        for field in ("env", "headers"):
            new, old = config.get(field), stored.get(field)
            if isinstance(new, dict) and isinstance(old, dict):
                config[field] = {k: old[k] if k in old and v == services.mask_secret(old[k]) else v for k, v in new.items()}
        try:
            normalize_server_config(config)
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None
        return config


@admin.register(MCPServer)
class MCPServerAdmin(admin.ModelAdmin):
    list_display = ["name", "status_badge", "tool_count", "last_error_short", "last_connected_at", "updated_at"]
    list_filter = ["status"]
    search_fields = ["name", "last_error"]
    readonly_fields = ["status", "last_error", "last_connected_at", "created_at", "updated_at"]
    inlines = [ToolInline]
    actions = ["reconnect", "refresh_tools"]
    form = MCPServerForm
    formfield_overrides = GROUP_PICKER  # applies to all its tools; a tool's own groups narrow further

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (["name"] if obj else [])

    def get_inlines(self, request, obj=None):
        return self.inlines if obj else []  # tools appear once the server is connected

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "config", "sampling", "allowed_groups"]
        return ["name", "config", "sampling", "allowed_groups", "status", "last_error", "last_connected_at", "created_at",
                "updated_at"]

    def save_model(self, request, obj: MCPServer, form, change) -> None:
        stored = MCPServer.objects.filter(pk=obj.pk).values_list("config", flat=True).first() if change else None
        if obj.config.get("command") and obj.config != stored:
            _require_run_code(request, f"MCP server {obj.name!r} (a command)")
        if change:  # as a re-post to /v1/tools/mcp: every worker drops the old connection, then reconnect
            outcome = mcp_services.mcp_register(servers={obj.name: obj.config})["servers"][obj.name]
            obj.refresh_from_db()
            self._report(request, obj, outcome)
            return
        super().save_model(request, obj, form, change)
        self._report(request, obj, mcp_services.mcp_connect(server=obj))

    # Deleting through the service stops the server's connection (and child process) on every worker.
    def delete_model(self, request, obj: MCPServer) -> None:
        mcp_services.mcp_delete(name=obj.name)

    def delete_queryset(self, request, queryset) -> None:
        for server in queryset:
            mcp_services.mcp_delete(name=server.name)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_tool_count=Count("tools"))

    def _report(self, request, server: MCPServer, outcome: dict) -> None:
        if outcome["status"] == "connected":
            self.message_user(request, f"{server.name}: connected, {len(outcome['tool_ids'])} tool(s).", messages.SUCCESS)
        else:
            self.message_user(request, f"{server.name}: {outcome['error']['message']}", messages.ERROR)

    @admin.action(description="Reconnect (restart the connection and refresh tools)")
    def reconnect(self, request, queryset) -> None:
        for server in queryset:
            self._report(request, server, mcp_services.mcp_reconnect(server=server))

    @admin.action(description="Refresh tools")
    def refresh_tools(self, request, queryset) -> None:
        for server in queryset:
            self._report(request, server, mcp_services.mcp_connect(server=server))

    @admin.display(description="tools", ordering="_tool_count")
    def tool_count(self, obj: MCPServer) -> int:
        return obj._tool_count  # type: ignore[attr-defined]  # annotated by get_queryset

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: MCPServer) -> str:
        color = {"connected": "#1a7f37", "error": "#cf222e"}.get(obj.status, "#6e7781")
        return format_html('<b style="color:{}">{}</b>', color, obj.status)

    @admin.display(description="last error")
    def last_error_short(self, obj: MCPServer) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error


class SkillUploadForm(forms.Form):
    file = forms.FileField(help_text="A .zip of a skill folder (SKILL.md at the root or in one top-level folder).")


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "uploaded", "path", "updated_at"]
    list_filter = ["uploaded"]
    search_fields = ["name", "description"]
    readonly_fields = [
        "name", "description", "path", "uploaded", "allowed_tools", "warnings", "skill_md", "created_at", "updated_at",
    ]
    change_list_template = "admin/registry/skill/change_list.html"
    formfield_overrides = GROUP_PICKER

    def has_add_permission(self, request) -> bool:
        return False  # skills come from an upload (below) or POST /v1/tools/skill

    def get_readonly_fields(self, request, obj=None):
        # The group picker is the page's only input; with no group to choose it offers nothing.
        return self.readonly_fields if Group.objects.exists() else [*self.readonly_fields, "allowed_groups"]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if not context["adminform"].form.fields:  # every field is read-only: there is nothing to save
            context.update(show_save=False, show_save_and_continue=False)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        own = [path("upload/", self.admin_site.admin_view(self.upload_view), name="registry_skill_upload")]
        return own + super().get_urls()

    def upload_view(self, request):
        form = SkillUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            if rights.zip_has_scripts(form.cleaned_data["file"]):
                _require_run_code(request, "A skill holding scripts")
            try:
                skill = skill_services.skill_register_zip(upload=form.cleaned_data["file"])
            except DomainError as exc:
                form.add_error("file", exc.message)
            else:
                self.message_user(request, f"Skill {skill.name!r} registered as tool skill.{skill.name}.", messages.SUCCESS)
                return redirect("admin:registry_skill_change", skill.pk)
        context = {**self.admin_site.each_context(request), "form": form, "title": "Upload a skill", "opts": self.model._meta}
        return TemplateResponse(request, "admin/registry/skill/upload.html", context)

    @admin.display(description="SKILL.md")
    def skill_md(self, obj: Skill) -> str:
        try:
            text = find_skill_file(obj.path).read_text(errors="replace")
        except (OSError, DomainError) as exc:
            return f"(unreadable: {exc})"
        return format_html('<pre style="white-space:pre-wrap;max-height:32em;overflow:auto">{}</pre>', text[:50_000])


class EnvVarForm(forms.ModelForm):
    """A plain value is shown as it is; a secret's stays unsaid (its masked form is the
    placeholder) and a blank submission keeps it."""

    class Meta:
        model = EnvVar
        fields = ["key", "value", "is_secret"]
        widgets = {"value": forms.TextInput(attrs={"autocomplete": "off", "size": 60})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.is_secret:
            self.fields["value"].widget = forms.PasswordInput(
                render_value=False,
                attrs={"autocomplete": "new-password", "placeholder": f"{services.mask_secret(self.instance.value)} (unchanged)"},
            )
            self.fields["value"].required = False
            self.fields["value"].help_text = "A secret: shown masked. Leave empty to keep it, or type a new value."

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.instance.pk and not cleaned.get("value"):
            cleaned["value"] = self.instance.value
        if cleaned.get("key") and "value" in cleaned:
            try:
                live_settings.validate(cleaned["key"], cleaned["value"])
            except ValueError as exc:
                self.add_error("value", str(exc))
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

    def save_model(self, request, obj: EnvVar, form, change) -> None:
        _require_run_code(request, "Setting an environment variable")
        env_store.env_set(key=obj.key, value=obj.value, is_secret=obj.is_secret)
        if obj.key in live_settings.RESTART_ONLY:  # the live ones apply at once (registry/live_settings.py)
            self.message_user(request, f"{obj.key} is stored for ${{{obj.key}}} references only: the server's own "
                                       "setting of that name comes from its process environment and changes with a "
                                       "restart (README, Configuration).", messages.WARNING)
        elif live_settings.is_live(obj.key):
            self.message_user(request, f"{obj.key} applies at once: in every worker, from the next run on.")

    def delete_model(self, request, obj: EnvVar) -> None:
        env_store.env_delete(key=obj.key)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            env_store.env_delete(key=obj.key)


admin_groups.register()  # the Group page, with what each group may use
