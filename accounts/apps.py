from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Who is who: login and its lockout, API keys, the commands that create users and keys."""

    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from . import lockout  # noqa: F401  (login throttling: signal receivers)
