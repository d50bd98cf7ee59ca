"""The chat pages (the /v1 API lives in agentsite/api_urls.py, login in accounts/urls.py)."""

from __future__ import annotations

from django.urls import path

from . import pages, settings_page

app_name = "chat"

urlpatterns = [
    path("", pages.chat_new, name="new"),
    path("c/<str:session_id>/", pages.chat_session, name="session"),
    path("c/<str:session_id>/messages/", pages.chat_messages, name="messages"),
    path("c/<str:session_id>/delete/", pages.chat_delete, name="delete"),
    path("c/<str:session_id>/files/<str:name>", pages.attachment, name="attachment"),
    path("sidebar/", pages.sidebar, name="sidebar"),
    path("settings/", settings_page.settings_page, name="settings"),
    path("templates/fields/", pages.template_fields, name="template-fields"),
]
