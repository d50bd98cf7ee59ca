from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (checks register themselves with Django)
            mcp_endpoint,  # noqa: F401  (registers the /mcp list_changed handlers on every worker)
        )
