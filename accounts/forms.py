"""Login forms that say when an account is locked, and for how long (never "wrong password" then)."""

from __future__ import annotations

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from .lockout import lock_of


class _LockAware(AuthenticationForm):
    @property
    def lock_message(self) -> str:
        """What the page says instead of "wrong password" when the attempt was refused."""
        lock = lock_of(self.request)
        return lock.message if lock is not None else ""

    def get_invalid_login_error(self) -> ValidationError:
        lock = lock_of(self.request)
        if lock is not None:
            return ValidationError(lock.message, code="locked")
        return super().get_invalid_login_error()


class LoginForm(_LockAware):
    """The chat's /login/ form (accounts/templates/accounts/login.html shows ``lock_message``)."""


class AdminLoginForm(_LockAware, AdminAuthenticationForm):
    """The admin's login form (``admin.site.login_form``, set in accounts/admin.py)."""
