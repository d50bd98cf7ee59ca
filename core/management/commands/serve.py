from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError


def parse_bind(value: str) -> tuple[str, int]:
    """``8080`` -> 127.0.0.1:8080; ``0.0.0.0:8080`` binds all interfaces (only when asked)."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"Expected PORT or HOST:PORT, got {value!r}.")
    return host, int(port)


class Command(BaseCommand):
    help = "Serve agentsite with Daphne (ASGI). Usage: manage.py serve [PORT | HOST:PORT] (default 127.0.0.1:8080)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("bind", nargs="?", default="127.0.0.1:8080")

    def handle(self, *args, bind: str, **options) -> None:
        from daphne.cli import CommandLineInterface

        host, port = parse_bind(bind)
        self.stdout.write(f"agentsite listening on http://{host}:{port}/  (admin: /admin/, API docs: /api/docs/)")
        sys.stdout.flush()
        # Twisted's default listen backlog is 50: a burst of connections beyond it is refused.
        interface = host.replace(":", r"\:")
        endpoint = f"tcp:port={port}:interface={interface}:backlog=4096"
        # No --proxy-headers: Daphne would believe X-Forwarded-For from anyone. The client address
        # is resolved per request, through AGENTSITE_TRUSTED_PROXIES only (core/proxies.py).
        CommandLineInterface().run(["-e", endpoint, "agentsite.asgi:application"])
