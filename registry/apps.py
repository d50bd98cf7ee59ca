from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """Models, tools, MCP servers, skills and the env store, with their /v1 endpoints and admin."""

    name = "registry"
    verbose_name = "Registry"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import cache, mcp_services, secret_sources  # registers the cross-worker MCP and env handlers
        from .skill_services import builtins_sync

        mcp_services.install()
        secret_sources.install()
        cache.install()

        post_migrate.connect(builtins_sync, sender=self, dispatch_uid="agentsite-builtins")
        # migrate and flush (tests) rewrite rows without model signals: what was cached is gone
        post_migrate.connect(lambda **kwargs: cache.changed(), sender=self, weak=False, dispatch_uid="agentsite-registry-cache")
