from typing import Any

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Who is who: login and its lockout, API keys, the commands that create users and keys."""

    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from . import lockout  # noqa: F401  (login throttling: signal receivers)
        from .models import ApiKey

        # Workers keep the keys that worked with the registry snapshot (``services.known_key_user``):
        # a change of a key or of its owner (deactivated, staff rights) must drop it everywhere.
        for sender in (ApiKey, get_user_model()):
            post_save.connect(_on_change, sender=sender, dispatch_uid=f"accounts-keys-save-{sender.__name__}")
            post_delete.connect(_on_change, sender=sender, dispatch_uid=f"accounts-keys-delete-{sender.__name__}")


def _on_change(update_fields: Any = None, **kwargs: Any) -> None:
    from registry import cache

    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login changes nothing a key's owner may do
    cache.changed()
