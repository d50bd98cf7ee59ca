"""The chat's settings page: change password, API keys (created, shown once, revoked), default model.

The same operations as ``/v1/me`` (accounts.services), as one plain HTML page with forms; each
form posts back here and the page is rendered again with what changed.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts import services as accounts
from core.http import csp
from registry import selectors as registry

PASSWORD_CHANGED = "Your password was changed."
KEY_REVOKED = "The key {prefix}… was revoked: it no longer works anywhere."
MODEL_SAVED = "New chats start with {model}."
NO_DEFAULT = "New chats start with the model you used last."


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    expires_at = forms.DateTimeField(required=False, help_text="Optional; empty = never.",
                                     widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))


class DefaultModelForm(forms.Form):
    model_id = forms.ChoiceField(required=False, label="Default model")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        models = registry.models_enabled(user=user)  # only what this user may use
        field = self.fields["model_id"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "The one I used last")] + [(m.model_id, m.display_name or m.model_id) for m in models]


def _page(request: HttpRequest, **forms_: Any) -> HttpResponse:
    user: Any = request.user  # logged in (login_required)
    initial = {"model_id": accounts.default_model_of(user)}
    context = {
        "password_form": forms_.get("password_form") or PasswordChangeForm(user),
        "key_form": forms_.get("key_form") or ApiKeyForm(),
        "model_form": forms_.get("model_form") or DefaultModelForm(user=user, initial=initial),
        "keys": accounts.api_keys_of(user=user),
        "new_key": forms_.get("new_key"),
    }
    return render(request, "chat/settings.html", context)


@csp
@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request: HttpRequest) -> HttpResponse:
    """GET shows the page; POST carries one of its forms (``action``)."""
    if request.method == "GET":
        return _page(request)
    action = request.POST.get("action")
    user: Any = request.user
    if action == "password":
        form = PasswordChangeForm(user, request.POST)
        if not form.is_valid():
            return _page(request, password_form=form)
        form.save()
        update_session_auth_hash(request, form.user)  # stay logged in here; other sessions end
        messages.success(request, PASSWORD_CHANGED)
    elif action == "create_key":
        key_form = ApiKeyForm(request.POST)
        if not key_form.is_valid():
            return _page(request, key_form=key_form)
        _, plaintext = accounts.api_key_create(user=user, **key_form.cleaned_data)
        return _page(request, new_key=plaintext)  # shown this once, never stored
    elif action == "revoke_key":
        key = accounts.api_keys_of(user=user).filter(pk=request.POST.get("key_id") or 0).first()
        if key is not None:
            accounts.api_key_revoke(user=user, key_id=key.pk)
            messages.success(request, KEY_REVOKED.format(prefix=key.prefix))
    elif action == "default_model":
        model_form = DefaultModelForm(request.POST, user=user)
        if not model_form.is_valid():
            return _page(request, model_form=model_form)
        model_id = model_form.cleaned_data["model_id"]
        accounts.default_model_set(user=user, model_id=model_id)
        messages.success(request, MODEL_SAVED.format(model=model_id) if model_id else NO_DEFAULT)
    return redirect("chat:settings")
