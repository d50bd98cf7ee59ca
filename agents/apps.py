from django.apps import AppConfig


class AgentsConfig(AppConfig):
    """Agents: saved compositions (model, tools, prompt, options) run by name."""

    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from core import names

        from .selectors import agent_name_taken

        names.register_claimer(agent_name_taken)  # a model may not take an agent's name
