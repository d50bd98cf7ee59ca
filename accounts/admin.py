from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import lockout
from .forms import AdminLoginForm
from .models import ApiKey, LoginAttempt
from .services import api_key_create

# The admin's login says when an account is locked and for how long, like /login/ does.
admin.site.login_form = AdminLoginForm


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "is_active", "created_at", "last_used_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    fields = ["user", "name", "is_active", "prefix", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key, plaintext = api_key_create(user=obj.user, name=obj.name)
        obj.pk, obj.prefix, obj.key_hash = key.pk, key.prefix, key.key_hash
        messages.warning(request, f"New API key (shown once, copy it now): {plaintext}")


@admin.register(LoginAttempt)
class LoginAttemptAdmin(admin.ModelAdmin):
    """Read-only log of password logins (accounts/lockout.py); its action lifts login locks."""

    list_display = ["at", "username", "client_address", "outcome", "known_device", "detail"]
    list_filter = ["outcome", "known_device", "at"]
    search_fields = ["username", "client_address"]
    date_hierarchy = "at"
    actions = ["lift_locks"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LoginAttempt | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LoginAttempt | None = None) -> bool:
        return False

    @admin.action(description="Lift the login locks of these usernames and addresses")
    def lift_locks(self, request: HttpRequest, queryset: QuerySet[LoginAttempt]) -> None:
        usernames = sorted(set(queryset.values_list("username", flat=True)))
        addresses = sorted({a for a in queryset.values_list("client_address", flat=True) if a})
        for username in usernames:
            lockout.lift(username=username)
        for address in addresses:
            lockout.lift(address=address)
        lifted = ", ".join([*usernames, *addresses])
        messages.success(request, f"Login locks lifted and failures forgotten for: {lifted}.")
