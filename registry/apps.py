from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Registry"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        import agentsite.broadcast  # noqa: F401  (cross-worker listener, started on the first request)

        from . import checks, signals  # noqa: F401  (system checks, env-store apply hooks)
        from .skill_services import builtins_sync

        post_migrate.connect(builtins_sync, sender=self, dispatch_uid="agentsite-builtins")
