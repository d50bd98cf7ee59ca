"""System checks for the bash tool's sandbox (docs/security.md): bash fails closed, so an
enabled bash without a working bubblewrap refuses every call; say so at startup instead."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

from inference.engine import probe_sandbox

from .services import get_runtime


@register()
def check_bash_sandbox(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    if "AGENTSITE_BASH_SANDBOX" in os.environ:
        problems.append(Warning(
            "AGENTSITE_BASH_SANDBOX is no longer read: bash always runs in bubblewrap, or not at all.",
            hint="Remove it. To run bash without a sandbox on purpose, set AGENTSITE_BASH_UNSANDBOXED=1.",
            id="agentsite.W003",
        ))  # fmt: skip
    conf = settings.AGENTSITE
    if not conf["BASH_ENABLED"]:
        return problems
    if conf["BASH_UNSANDBOXED"]:
        problems.append(Warning(
            "The bash tool runs WITHOUT a sandbox (AGENTSITE_BASH_UNSANDBOXED=1): every user who may "
            "call it can read and change what the server's account can, including the database and its secrets.",
            hint="Install bubblewrap and unset AGENTSITE_BASH_UNSANDBOXED, unless the server is an isolated, disposable machine.",
            id="agentsite.W002",
        ))  # fmt: skip
        return problems
    probe = probe_sandbox(get_runtime(conf).tool_settings)  # bash's settings are start-up ones: no query
    if not probe.usable:
        problems.append(Warning(
            f"The bash tool is enabled but has no working sandbox ({probe.reason}); every call will be refused.",
            hint="Install bubblewrap (apt-get install bubblewrap) where unprivileged user namespaces are allowed, "
                 "or turn bash off (AGENTSITE_BASH_ENABLED=0).",
            id="agentsite.W001",
        ))  # fmt: skip
    return problems
