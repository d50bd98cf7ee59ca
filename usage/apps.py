from django.apps import AppConfig


class UsageConfig(AppConfig):
    """Who used how many tokens (one record per model call), and the quotas that limit it."""

    name = "usage"
    verbose_name = "Usage and quotas"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from registry import cache

        from .models import Quota

        # Quotas are read from the registry snapshot (usage.selectors.quota_effective).
        for name, signal in (("save", post_save), ("delete", post_delete)):
            signal.connect(lambda **kwargs: cache.changed(), sender=Quota, weak=False, dispatch_uid=f"usage-quota-{name}")
