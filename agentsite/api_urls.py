"""Every /v1 route in one place."""

from django.urls import path

from inference import views as inference
from registry import views as registry
from sessions import views as sessions
from templates_app import views as templates

urlpatterns = [
    path("models", registry.ModelListView.as_view()),
    path("models/detect", registry.ModelDetectView.as_view()),
    path("models/<str:model_id>", registry.ModelDetailView.as_view()),
    path("infer", inference.infer),
    path("infer/stream", inference.infer_stream),
    path("tools/call", inference.call_tool),
    path("tools/mcp", registry.MCPServerListView.as_view()),
    path("tools/mcp/<str:server>", registry.MCPServerDetailView.as_view()),
    path("tools/skill", registry.SkillListView.as_view()),
    path("tools/skill/<str:name>", registry.SkillDetailView.as_view()),
    path("tools", registry.ToolListView.as_view()),
    path("tools/<str:tool_id>", registry.ToolDetailView.as_view()),
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
]
