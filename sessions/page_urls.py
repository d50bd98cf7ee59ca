"""The chat pages and the login/logout routes (the /v1 API lives in agentsite/api_urls.py)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from . import pages

app_name = "chat"

urlpatterns = [
    path("", pages.chat_new, name="new"),
    path("c/<str:session_id>/", pages.chat_session, name="session"),
    path("c/<str:session_id>/messages/", pages.chat_messages, name="messages"),
    path("c/<str:session_id>/delete/", pages.chat_delete, name="delete"),
    path("c/<str:session_id>/files/<str:name>", pages.attachment, name="attachment"),
    path("sidebar/", pages.sidebar, name="sidebar"),
    path("templates/fields/", pages.template_fields, name="template-fields"),
    path(
        "login/",
        pages.csp(auth_views.LoginView.as_view(template_name="chat/login.html", redirect_authenticated_user=True)),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
