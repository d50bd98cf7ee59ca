"""Every /v1 route in one place."""

from django.urls import path

from accounts import views as accounts
from agents import views as agents
from inference import views as inference
from registry import views as registry
from sessions import views as sessions
from templates_app import views as templates
from usage import views as usage

urlpatterns = [
    path("models", registry.ModelListView.as_view()),
    path("models/detect", registry.ModelDetectView.as_view()),
    path("models/<str:model_id>", registry.ModelDetailView.as_view()),
    path("agents", agents.AgentListView.as_view()),
    path("agents/<str:name>", agents.AgentDetailView.as_view()),
    path("infer", inference.infer),
    path("infer/stream", inference.infer_stream),
    path("tools/call", inference.call_tool),
    path("tools/mcp", registry.MCPServerListView.as_view()),
    path("tools/mcp/<str:server>", registry.MCPServerDetailView.as_view()),
    path("tools/skill", registry.SkillListView.as_view()),
    path("tools/skill/<str:name>", registry.SkillDetailView.as_view()),
    path("tools", registry.ToolListView.as_view()),
    # A tool id may hold "/" and "." (MCP tool names do): the path converter takes both.
    path("tools/<path:tool_id>", registry.ToolDetailView.as_view()),
    path("env", registry.EnvListView.as_view()),
    path("env/detect", registry.EnvDetectView.as_view()),
    path("env/<str:key>", registry.EnvDetailView.as_view()),
    path("prompt-templates", templates.TemplateListView.as_view()),
    path("prompt-templates/<str:id_or_name>", templates.TemplateDetailView.as_view()),
    path("prompt-templates/<str:id_or_name>/versions", templates.TemplateVersionsView.as_view()),
    path("prompt-templates/<str:id_or_name>/render", templates.TemplateRenderView.as_view()),
    path("sessions", sessions.SessionListView.as_view()),
    path("sessions/<str:session_id>", sessions.SessionDetailView.as_view()),
    path("sessions/<str:session_id>/cancel", sessions.SessionCancelView.as_view()),
    path("sessions/<str:session_id>/export", sessions.SessionExportView.as_view()),
    path("sessions/<str:session_id>/regenerate", inference.session_regenerate),
    path("sessions/<str:session_id>/regenerate/stream", inference.session_regenerate_stream),
    path("sessions/<str:session_id>/edit", inference.session_edit),
    path("sessions/<str:session_id>/edit/stream", inference.session_edit_stream),
    path("usage", usage.UsageView.as_view()),
    path("quotas", usage.QuotaListView.as_view()),
    path("quotas/<str:scope>/<str:name>", usage.QuotaDetailView.as_view()),
    path("me", accounts.MeView.as_view()),
    path("me/api-keys", accounts.MyApiKeyListView.as_view()),
    path("me/api-keys/<str:key_id>", accounts.MyApiKeyDetailView.as_view()),
]
