from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Registry"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401  (system checks, env-store apply hooks)
