"""manage.py import_runtime_config [DIR] --user NAME [--dry-run]: see web/runtime_import.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from web.runtime_import import runtime_import


class Command(BaseCommand):
    help = "Import models, function tools, MCP servers, prompt templates, env values and sessions from ~/.agents_runtime."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", nargs="?", default=str(Path.home() / ".agents_runtime"),
                            help="the old runtime's folder (default ~/.agents_runtime)")
        parser.add_argument("--user", required=True, help="the user who will own the imported sessions")
        parser.add_argument("--dry-run", action="store_true", help="check and report only; write and start nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = get_user_model().objects.filter(username=options["user"]).first()
        if owner is None:
            raise CommandError(f"No user named {options['user']!r} (create one first: manage.py createsuperuser).")
        report = runtime_import(folder=Path(options["folder"]).expanduser(), owner=owner, dry_run=options["dry_run"])
        for line in report.lines():
            self.stdout.write(line)
        if report.problems:
            self.stderr.write(f"{len(report.problems)} item(s) could not be imported; see above.")
