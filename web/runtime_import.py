"""Bring a set-up over from the original stdlib runtime (``~/.agents_runtime/``).

The old runtime kept its registries as JSON files and each conversation in a folder:

    models.json  tools.json  mcp_servers.json  prompt_templates.json  env.json
    chat_data/<session_id>/conversation.json  summary.md  memory.md

Each file may be a list of entries or a map keyed by id (``model_id``, ``tool_id``, template
``name``), optionally wrapped as ``{"models": [...]}`` / ``{"tools": ...}`` / ``{"templates": ...}``;
entries use the field names of the ``/v1`` bodies and go through the same serializers and
services as the API, so what the API refuses is refused here too (and reported, not fatal).
Fields the API does not know are dropped and named in the report. ``env.json`` is a flat map,
stored as secrets; ``mcp_servers.json`` is the common ``mcpServers`` format.

Idempotent: what exists already (same id or name; a session with the same id) is left as it
is, so running it twice changes nothing the second time. ``dry_run`` validates everything and
reports what would be created, without writing or starting anything.

This is the top layer's job (it writes to the registry, templates and sessions), so it lives
with the web front; ``manage.py import_runtime_config`` is its command line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from django.db import transaction
from rest_framework import serializers

from core.errors import DomainError
from registry import env_store, mcp_services
from registry import services as registry_services
from registry.models import EnvVar, LLMModel, MCPServer, Tool
from registry.serializers import EnvVarSerializer, ModelSerializer, ToolSerializer
from sessions import services as session_store
from sessions.models import Role, Session
from templates_app import services as templates
from templates_app.models import PromptTemplate
from templates_app.serializers import PromptTemplateSerializer

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
MESSAGE_FIELDS = set(session_store.RECORD_FIELDS)


@dataclass
class Report:
    """What an import did (or, in a dry run, would do), per section."""

    dry_run: bool
    created: dict[str, list[str]] = field(default_factory=dict)
    existing: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, section: str, name: str, *, exists: bool) -> None:
        (self.existing if exists else self.created).setdefault(section, []).append(name)

    def lines(self) -> list[str]:
        verb = "would create" if self.dry_run else "created"
        out = ["DRY RUN: nothing was written." if self.dry_run else "Import done."]
        for section in sorted(set(self.created) | set(self.existing)):
            made, kept = self.created.get(section, []), self.existing.get(section, [])
            out.append(f"{section}: {verb} {len(made)}{' (' + ', '.join(made) + ')' if made else ''}; "
                       f"already there {len(kept)}{' (' + ', '.join(kept) + ')' if kept else ''}")
        out += [f"note: {n}" for n in self.notes]
        out += [f"could not import: {p}" for p in self.problems]
        return out


def _entries(data: Any, wrapper: str, key: str) -> list[dict[str, Any]]:
    """A list of entries, or a map keyed by ``key`` (optionally inside ``{wrapper: ...}``)."""
    if isinstance(data, dict) and wrapper in data and len(data) == 1:
        data = data[wrapper]
    if isinstance(data, list):
        return [e for e in data if isinstance(e, dict)]
    if isinstance(data, dict):
        return [{key: k, **v} if isinstance(v, dict) else {key: k, "_value": v} for k, v in data.items()]
    return []


def _error_text(exc: Exception) -> str:
    if isinstance(exc, serializers.ValidationError):
        return json.dumps(exc.detail, default=str)
    if isinstance(exc, DomainError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


class RuntimeImport:
    def __init__(self, folder: Path, *, owner: Any, dry_run: bool) -> None:
        self.folder = folder
        self.owner = owner
        self.report = Report(dry_run=dry_run)

    def _load(self, name: str) -> Any:
        path = self.folder / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.report.problems.append(f"{name}: not readable JSON ({exc})")
            return None

    def _known_fields(self, where: str, entry: dict[str, Any], serializer: type[serializers.Serializer]) -> dict[str, Any]:
        fields = {n for n, f in serializer().fields.items() if not f.read_only}
        dropped = sorted(set(entry) - fields)
        if dropped:
            self.report.notes.append(f"{where}: ignored fields {', '.join(dropped)}")
        return {k: v for k, v in entry.items() if k in fields}

    def _one(self, section: str, name: str, exists: bool, create: Callable[[], Any], where: str) -> None:
        """Create one entry (unless it exists or this is a dry run), recording what happened."""
        if not exists and not self.report.dry_run:
            try:
                with transaction.atomic():
                    create()
            except Exception as exc:  # noqa: BLE001 - one bad entry is reported; the others still import
                self.report.problems.append(f"{where}: {_error_text(exc)}")
                return
        self.report.add(section, name, exists=exists)

    def _validated(self, where: str, serializer: type[serializers.Serializer], entry: dict[str, Any]) -> dict[str, Any] | None:
        ser = serializer(data=self._known_fields(where, entry, serializer))
        if not ser.is_valid():
            self.report.problems.append(f"{where}: {json.dumps(ser.errors, default=str)}")
            return None
        return dict(ser.validated_data)

    # -- sections -----------------------------------------------------------------------------

    def models(self) -> None:
        for i, entry in enumerate(_entries(self._load("models.json"), "models", "model_id")):
            where = f"models.json[{entry.get('model_id', i)}]"
            data = self._validated(where, ModelSerializer, entry)
            if data is not None:
                exists = LLMModel.objects.filter(model_id=data["model_id"]).exists()
                self._one("models", data["model_id"], exists, partial(registry_services.model_create, data=data), where)

    def tools(self) -> None:
        for i, entry in enumerate(_entries(self._load("tools.json"), "tools", "tool_id")):
            # The old runtime named a function by its id; the API wants a name the model sees.
            entry = {"tool_type": "function", "name": str(entry.get("tool_id", "")).rsplit(".", 1)[-1], **entry}
            where = f"tools.json[{entry.get('tool_id', i)}]"
            data = self._validated(where, ToolSerializer, entry)
            if data is None:
                continue
            if data.get("tool_type", "function") != "function":
                self.report.problems.append(f"{where}: only function tools are imported (this is {data.get('tool_type')!r})")
                continue
            exists = Tool.objects.filter(tool_id=data["tool_id"]).exists()
            if not exists and self.report.dry_run:
                try:  # what the service would refuse (an import path that does not import)
                    registry_services.callable_check(data.get("callable", ""))
                except DomainError as exc:
                    self.report.problems.append(f"{where}: {exc.message}")
                    continue
            self._one("tools", data["tool_id"], exists, partial(registry_services.tool_create, data=data), where)

    def mcp_servers(self) -> None:
        raw = self._load("mcp_servers.json")
        if raw is None:
            return
        body = raw if isinstance(raw, dict) and "mcpServers" in raw else {"mcpServers": raw}
        try:
            servers = mcp_services.mcp_parse_body(body)
        except DomainError as exc:
            self.report.problems.append(f"mcp_servers.json: {exc.message}")
            return
        new = {name: config for name, config in servers.items() if not MCPServer.objects.filter(name=name).exists()}
        for name in servers:
            self.report.add("mcp_servers", name, exists=name not in new)
        if new and not self.report.dry_run:
            # Registered and started as through POST /v1/tools/mcp; a server that fails to start
            # stays registered with its error (admin: MCP servers), like one added by the API.
            outcome = mcp_services.mcp_register(servers=new)
            for name, result in (outcome.get("servers") or {}).items():
                if isinstance(result, dict) and result.get("status") == "error":
                    error = (result.get("error") or {}).get("message", "")
                    self.report.notes.append(f"mcp server {name}: registered, but it did not start: {error}")

    def templates(self) -> None:
        for i, entry in enumerate(_entries(self._load("prompt_templates.json"), "templates", "name")):
            where = f"prompt_templates.json[{entry.get('name', i)}]"
            data = self._validated(where, PromptTemplateSerializer, entry)
            if data is None:
                continue
            exists = PromptTemplate.objects.filter(name=data["name"]).exists()
            create = partial(
                templates.template_create, name=data["name"], content=data["content"], description=data.get("description", "")
            )
            self._one("prompt_templates", data["name"], exists, create, where)

    def env(self) -> None:
        raw = self._load("env.json")
        if raw is None:
            return
        if not isinstance(raw, dict):
            self.report.problems.append("env.json: expected a flat map of names to values")
            return
        for key, value in raw.items():
            where = f"env.json[{key}]"
            if not isinstance(value, (str, int, float, bool)):
                self.report.problems.append(f"{where}: the value is not text")
                continue
            data = self._validated(where, EnvVarSerializer, {"key": key, "value": str(value), "is_secret": True})
            if data is not None:
                exists = EnvVar.objects.filter(key=key).exists()
                self._one("env", key, exists, partial(env_store.env_set, **data), where)

    def sessions(self) -> None:
        root = self.folder / "chat_data"
        if not root.is_dir():
            return
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            self._session(folder)

    def _session(self, folder: Path) -> None:
        where = f"chat_data/{folder.name}"
        if not SESSION_ID_RE.match(folder.name):
            self.report.problems.append(f"{where}: the folder name is not a usable session id")
            return
        raw = self._load(f"chat_data/{folder.name}/conversation.json")
        if raw is None:
            if not (folder / "conversation.json").exists():
                self.report.problems.append(f"{where}: no conversation.json")
            return
        meta = raw if isinstance(raw, dict) else {}
        messages = meta.get("messages") if isinstance(raw, dict) else raw
        if not isinstance(messages, list):
            self.report.problems.append(f"{where}: conversation.json holds no list of messages")
            return
        records = list(self._records(where, messages))
        existing = Session.objects.filter(pk=folder.name).first()
        if existing is not None and existing.owner_id != self.owner.pk:
            self.report.problems.append(f"{where}: a session with this id belongs to another user")
            return
        summary = _read_text(folder / "summary.md")
        memory = _memory_facts(_read_text(folder / "memory.md"))

        def create() -> None:
            session = Session.objects.create(
                pk=folder.name, owner=self.owner, model_id=str(meta.get("model_id") or meta.get("model") or "")[:100],
                title=str(meta.get("title") or "")[:200], summary=summary, memory=memory,
            )
            for record in records:
                session_store.message_append(session_id=session.pk, record=record)

        self._one("sessions", folder.name, existing is not None, create, where)

    def _records(self, where: str, messages: list[Any]) -> Iterable[dict[str, Any]]:
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in Role.values:
                self.report.notes.append(f"{where}: message {i} skipped (no known role)")
                continue
            record = {k: v for k, v in m.items() if k in MESSAGE_FIELDS}
            content = record.get("content")
            if content is None or not isinstance(content, (str, list)):
                record["content"] = "" if content is None else json.dumps(content)
            yield record

    def run(self) -> Report:
        if not self.folder.is_dir():
            self.report.problems.append(f"{self.folder}: not a folder")
            return self.report
        for step in (self.models, self.tools, self.mcp_servers, self.templates, self.env, self.sessions):
            step()
        return self.report


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() if path.exists() else ""
    except OSError:
        return ""


def _memory_facts(text: str) -> list[str]:
    """memory.md as facts: one per list item or non-empty line."""
    facts = [line.strip().lstrip("-*•").strip() for line in text.splitlines()]
    return [f for f in facts if f and not f.startswith("#")][: session_store.MEMORY_MAX_FACTS]


def runtime_import(*, folder: Path, owner: Any, dry_run: bool = False) -> Report:
    """Import ``folder`` (the old runtime's ``~/.agents_runtime``) for ``owner``; see the module doc."""
    return RuntimeImport(folder, owner=owner, dry_run=dry_run).run()

