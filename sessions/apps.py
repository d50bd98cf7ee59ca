from django.apps import AppConfig


class ChatConfig(AppConfig):
    # django.contrib.sessions owns the label "sessions"; ours is "chat".
    name = "sessions"
    label = "chat"
    verbose_name = "Chat sessions"
