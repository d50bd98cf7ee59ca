"""What "staff" could do before rights came from Django permissions: every registry permission.

The data migration that introduced them gives these to every existing non-superuser staff
account, so nobody lost a right on upgrade (docs/security.md); the test cast's registry
manager gets the same set.
"""

from __future__ import annotations

# (app label, model name): add/change/delete/view of each registry.
REGISTRY_MODELS = (
    ("registry", "llmmodel"),
    ("registry", "tool"),
    ("registry", "mcpserver"),
    ("registry", "skill"),
    ("registry", "envvar"),
    ("templates_app", "prompttemplate"),
    ("agents", "agent"),  # saved compositions are a registry too (docs/agents.md)
)
ACTIONS = ("add", "change", "delete", "view")
EXTRA = (("registry", "run_code"),)


def registry_codenames() -> list[tuple[str, str]]:
    """Every (app label, codename) a registry manager holds, ``run_code`` included."""
    return [(app, f"{action}_{model}") for app, model in REGISTRY_MODELS for action in ACTIONS] + list(EXTRA)
