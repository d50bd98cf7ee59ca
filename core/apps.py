from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The kernel every app may import: errors and their envelope, async DB helpers, the bus."""

    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from django.contrib import admin

        from . import checks, secrets  # noqa: F401  (checks register themselves with Django)

        secrets.install()
        # The admin index opens with a line on the cross-worker bus (core/templates/admin/).
        admin.site.index_template = "admin/agentsite_index.html"
