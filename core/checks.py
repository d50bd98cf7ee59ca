"""System checks for configuration mistakes that would otherwise surface at request time."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_agentsite_settings(app_configs, **kwargs):
    problems = []
    data_dir = settings.AGENTSITE["DATA_DIR"]
    if not os.access(data_dir, os.W_OK):
        problems.append(Error(f"AGENTSITE_DATA_DIR {data_dir!r} is not writable.", id="agentsite.E001"))
    if not settings.DEBUG and settings.AGENTSITE["BASH_ENABLED"] and not settings.AGENTSITE["BASH_SANDBOX"]:
        problems.append(
            Warning("The bash tool is enabled without its bubblewrap sandbox.", id="agentsite.W001",
                    hint="Set AGENTSITE_BASH_SANDBOX=1 and install bubblewrap.")
        )
    return problems
