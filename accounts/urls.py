"""Login and logout for the browser pages (the admin has its own, through the same backend)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from core.http import csp

from .forms import LoginForm

app_name = "accounts"

urlpatterns = [
    path(
        "login/",
        csp(auth_views.LoginView.as_view(
            template_name="accounts/login.html", authentication_form=LoginForm, redirect_authenticated_user=True,
        )),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
