from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Registry"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        import agentsite.broadcast  # noqa: F401  (cross-worker listener, started on the first request)

        from . import checks, lockout, signals  # noqa: F401  (system checks, login throttling, env-store apply)
        from .skill_services import builtins_sync

        post_migrate.connect(builtins_sync, sender=self, dispatch_uid="agentsite-builtins")
