from django.apps import AppConfig


class UsageConfig(AppConfig):
    """Who used how many tokens (one record per model call), and the quotas that limit it."""

    name = "usage"
    verbose_name = "Usage and quotas"
