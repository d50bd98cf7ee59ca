"""System checks for configuration mistakes that would otherwise surface at request time."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, register


@register()
def check_agentsite_settings(app_configs, **kwargs):
    problems = []
    data_dir = settings.AGENTSITE["DATA_DIR"]
    if not os.access(data_dir, os.W_OK):
        problems.append(Error(f"AGENTSITE_DATA_DIR {data_dir!r} is not writable.", id="agentsite.E001"))
    # The bash sandbox's checks (agentsite.W001-W003) are the inference app's: inference/checks.py.
    return problems
