from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.admin_views import bus_page
from core.api import json_404, json_500
from core.health import healthz
from inference import openai_views

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/bus/", admin.site.admin_view(bus_page), name="admin-bus"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("v1/", include("agentsite.api_urls")),
    path("openai/v1/models", openai_views.models),
    path("openai/v1/chat/completions", openai_views.chat_completions),
    path("", include("accounts.urls")),
    path("", include("web.urls")),
]


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(("/v1/", "/openai/v1/", "/healthz"))


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/openai/v1/"):  # OpenAI's clients read OpenAI's error shape
        return openai_views.not_found(request)
    return json_404(request) if _is_api(request) else defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    return json_500(request) if _is_api(request) else defaults.server_error(request)
