from django.apps import AppConfig


class WebConfig(AppConfig):
    """The browser pages: the HTMX chat (it runs inference through /v1/infer/stream)."""

    name = "web"
    verbose_name = "Web pages"
