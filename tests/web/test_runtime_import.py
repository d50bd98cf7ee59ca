"""manage.py import_runtime_config over a sample ~/.agents_runtime (tests/fixtures/agents_runtime):
what it creates, what it refuses and says so, idempotence, and a dry run that writes nothing."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from registry.models import EnvVar, LLMModel, MCPServer, Tool
from sessions.models import Session
from templates_app.models import PromptTemplate

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "agents_runtime"


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_runtime_config", str(SAMPLE), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def counts() -> tuple[int, ...]:
    return (LLMModel.objects.count(), Tool.objects.filter(tool_type="function").count(), MCPServer.objects.count(),
            PromptTemplate.objects.count(), EnvVar.objects.count(), Session.objects.count())


def test_a_dry_run_reports_and_writes_nothing(db, alice) -> None:
    out, err = run("--user", "alice", "--dry-run")
    assert out.startswith("DRY RUN: nothing was written.")
    assert "models: would create 2 (local-qwen, ollama-llama)" in out
    assert "tools: would create 1 (math.add)" in out
    assert "mcp_servers: would create 1 (notes)" in out
    assert "sessions: would create 1 (old-chat-1)" in out
    assert "could not import: models.json[broken]" in out and "could not import: tools.json[old.gone]" in out
    assert counts() == (0, 0, 0, 0, 0, 0)
    assert "item(s) could not be imported" in err


def test_it_imports_everything_it_can_and_is_idempotent(db, alice) -> None:
    out, _ = run("--user", "alice")
    assert out.startswith("Import done.")
    qwen = LLMModel.objects.get(model_id="local-qwen")
    assert qwen.tool_call_format == "auto" and qwen.display_name == "Qwen 3 (llama.cpp)"
    assert "note: models.json[local-qwen]: ignored fields temperature_hint" in out
    assert Tool.objects.get(tool_id="math.add").callable == "tests.tool_fns.add"
    assert not Tool.objects.filter(tool_id="old.gone").exists()
    server = MCPServer.objects.get(name="notes")
    assert server.config["command"] == "notes-mcp" and server.config["disabled"] is True
    assert PromptTemplate.objects.get(name="summarize").description == "Short summaries"
    token = EnvVar.objects.get(key="NOTES_TOKEN")
    assert token.value == "tok-123" and token.is_secret  # env values are stored as secrets
    assert not EnvVar.objects.filter(key="bad key").exists() and not EnvVar.objects.filter(key="NESTED").exists()
    assert "sk-old-key" not in out  # values never printed

    session = Session.objects.get(pk="old-chat-1")
    assert session.owner == alice and session.title == "Planning a trip" and session.model_id == "local-qwen"
    assert session.summary == "The user planned a May trip to Lisbon."
    assert session.memory == ["The user lives in Berlin.", "The user prefers trains."]
    rows = list(session.messages.order_by("seq").values_list("role", "content", "thinking"))
    assert rows == [
        ("user", "I want to visit Lisbon in May.", ""),
        ("assistant", "Lisbon in May is lovely.", "The user plans a trip."),
        ("user", "What should I pack?", ""),
        ("assistant", "Light clothes and a jacket.", ""),
    ]
    assert session.message_count == 4
    assert "chat_data/old-chat-1: message 2 skipped (no known role)" in out
    assert "could not import: chat_data/bad name: the folder name is not a usable session id" in out

    before = counts()
    again, _ = run("--user", "alice")
    assert counts() == before
    assert "models: created 0; already there 2 (local-qwen, ollama-llama)" in again
    assert "sessions: created 0; already there 1 (old-chat-1)" in again


def test_a_session_of_another_user_is_not_touched(db, alice, bob) -> None:
    Session.objects.create(pk="old-chat-1", owner=bob, title="Bob's")
    out, _ = run("--user", "alice")
    assert "chat_data/old-chat-1: a session with this id belongs to another user" in out
    assert Session.objects.get(pk="old-chat-1").title == "Bob's" and not Session.objects.get(pk="old-chat-1").messages.exists()


def test_an_unknown_user_or_folder(db, alice, tmp_path) -> None:
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("--user", "nobody")
    out = StringIO()
    call_command("import_runtime_config", str(tmp_path / "missing"), "--user", "alice", stdout=out, stderr=StringIO())
    assert "not a folder" in out.getvalue()
