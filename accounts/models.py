"""Accounts: per-user API keys (only a hash of each key is stored) and the login attempts log."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

KEY_PREFIX = "ask_"


def hash_api_key(plaintext: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(plaintext.encode()).hexdigest()


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise the key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Refused from this moment on; empty = never.")
    # A revoked key is kept (inactive) so that usage records still name the key they came with.
    is_active = models.BooleanField(default=True)

    class Meta:
        # The table kept its name when the model moved here from the registry app.
        db_table = "registry_apikey"
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class Preferences(models.Model):
    """A user's own choices from the chat's settings page."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences")
    default_model_id = models.CharField(max_length=100, blank=True, default="", help_text="Preselected in a new chat.")

    class Meta:
        verbose_name_plural = "preferences"

    def __str__(self) -> str:
        return f"preferences of {self.user}"


class LoginAttempt(models.Model):
    """One password login attempt, for the admin (accounts/lockout.py writes them; pruned on write)."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", "password accepted"
        FAILED = "failed", "wrong username or password"
        LOCKED = "locked", "refused: locked"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    username = models.CharField(max_length=150, db_index=True)
    client_address = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    known_device = models.BooleanField(default=False, help_text="The browser had logged in to this account before.")
    detail = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.username} from {self.client_address or '?'}: {self.outcome}"
