from django.apps import AppConfig


class AgentsConfig(AppConfig):
    """Agents: saved compositions (model, tools, prompt, options) run by name."""

    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from core import names
        from registry import cache

        from .models import Agent
        from .selectors import agent_name_taken

        names.register_claimer(agent_name_taken)  # a model may not take an agent's name
        # The names of enabled agents are read from the registry snapshot (agent_name_known).
        for name, signal in (("save", post_save), ("delete", post_delete)):
            signal.connect(lambda **kwargs: cache.changed(), sender=Agent, weak=False, dispatch_uid=f"agents-names-{name}")
