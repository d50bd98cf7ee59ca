from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Conversation storage (history, run lock, summary, memory) and /v1/sessions."""

    # django.contrib.sessions owns the label "sessions"; ours is "chat".
    name = "sessions"
    label = "chat"
    verbose_name = "Chat sessions"

    def ready(self) -> None:
        from . import runs  # noqa: F401  (registers the cross-worker cancel handler)
