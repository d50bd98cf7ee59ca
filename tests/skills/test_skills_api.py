"""Skills through the API: registration, safe uploads, progressive disclosure on the wire; built-ins."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from registry.models import Skill, Tool
from tests.api.test_registries import assert_error
from tests.factories import LLMModelFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply
from tests.inference.conftest import sent_messages

# Copies of two public skills from github.com/anthropics/skills (Apache-2.0, unmodified), so a clone is self-contained.
SHARED = Path(__file__).parent / "data"
COMMS = SHARED / "internal-comms"
THEMES = SHARED / "theme-factory"


def zip_of(folder: Path, prefix: str = "") -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, prefix + str(path.relative_to(folder)))
    buf.seek(0)
    buf.name = "skill.zip"
    return buf


def raw_zip(entries: dict[str, bytes], symlink: str | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            z.writestr(info, "/etc/passwd")
    buf.seek(0)
    buf.name = "bad.zip"
    return buf


GOOD_MD = b"---\nname: tiny\ndescription: A tiny skill for tests.\nallowed-tools: fetch Read\n---\n# Tiny\nDo tiny things.\n"


def skills_dir() -> Path:
    return Path(settings.AGENTSITE["DATA_DIR"]) / "skills"


def test_register_a_folder_and_call_it_directly(staff_api: APIClient, alice_api: APIClient) -> None:
    res = staff_api.post("/v1/tools/skill", {"path": str(COMMS)}, format="json")
    assert res.status_code == 201, res.content
    assert res.json()["tool_id"] == "skill.internal-comms"
    assert staff_api.get("/v1/tools/skill.internal-comms").json()["skill"] == "internal-comms"
    assert alice_api.get("/v1/tools/skill.internal-comms").json()["tool_type"] == "skill"  # the public view
    body = alice_api.post("/v1/tools/call", {"tool_id": "skill.internal-comms"}, format="json").json()
    text = body["content"][0]["text"]
    assert body["is_error"] is False and "<skill_content" in text and "examples/faq-answers.md" in text
    assert "description:" not in text  # frontmatter stripped
    assert alice_api.post("/v1/tools/skill", {"path": str(COMMS)}, format="json").status_code == 403


def test_upload_a_zip_with_a_top_folder(staff_api: APIClient) -> None:
    res = staff_api.post("/v1/tools/skill", {"file": zip_of(THEMES, "theme-factory/")}, format="multipart")
    assert res.status_code == 201, res.content
    skill = Skill.objects.get(name="theme-factory")
    assert skill.uploaded and Path(skill.path).is_relative_to(skills_dir()) and (Path(skill.path) / "themes").is_dir()
    assert staff_api.delete("/v1/tools/skill/theme-factory").status_code == 204
    assert not Path(skill.path).exists() and not Tool.objects.filter(tool_id="skill.theme-factory").exists()


@pytest.mark.parametrize(
    "archive,reason",
    [
        (lambda: raw_zip({"SKILL.md": GOOD_MD, "../escape.txt": b"x"}), ".."),
        (lambda: raw_zip({"SKILL.md": GOOD_MD, "/abs.txt": b"x"}), "absolute"),
        (lambda: raw_zip({"SKILL.md": GOOD_MD}, symlink="link"), "symbolic link"),
        (lambda: raw_zip({"SKILL.md": GOOD_MD, **{f"f{i}.txt": b"x" for i in range(600)}}), "files"),
        (lambda: raw_zip({"notes.txt": b"no skill here"}), "SKILL.md"),
        (lambda: io.BytesIO(b"not a zip at all"), "zip"),
    ],
)
def test_unsafe_archives_are_400_and_leave_nothing(staff_api: APIClient, archive, reason: str) -> None:
    before = set(skills_dir().iterdir()) if skills_dir().exists() else set()
    upload = archive()
    upload.name = "x.zip"
    err = assert_error(staff_api.post("/v1/tools/skill", {"file": upload}, format="multipart"), 400, "invalid_skill")
    assert reason.lower() in err["message"].lower()
    after = set(skills_dir().iterdir()) if skills_dir().exists() else set()
    assert after == before and not Skill.objects.exists()


def test_oversized_archive_is_refused(staff_api: APIClient, settings) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "SKILL_MAX_BYTES": 1000}
    upload = raw_zip({"SKILL.md": GOOD_MD, "big.txt": b"x" * 5000})
    err = assert_error(staff_api.post("/v1/tools/skill", {"file": upload}, format="multipart"), 400, "invalid_skill")
    assert "bytes" in err["message"].lower()


def test_bad_requests(staff_api: APIClient) -> None:
    assert_error(staff_api.post("/v1/tools/skill", {}, format="json"), 400, "validation_error")
    assert_error(staff_api.post("/v1/tools/skill", {"path": "/no/such/dir"}, format="json"), 400, "invalid_skill")
    assert_error(staff_api.delete("/v1/tools/skill/nope"), 404, "not_found")


@pytest.mark.parametrize("protocol", ["openai", "ollama"])
def test_progressive_disclosure_on_the_wire(
    staff_api: APIClient, alice_api: APIClient, fake_llm: FakeLLMServer, protocol: str
) -> None:
    LLMModelFactory(model_id="m", api_protocol=protocol, fake=fake_llm, model_name="m")
    folder = raw_zip({"tiny/SKILL.md": GOOD_MD, "tiny/references/guide.md": b"Guide: be tiny."})
    assert staff_api.post("/v1/tools/skill", {"file": folder}, format="multipart").status_code == 201
    fake_llm.script([
        Reply(tool_calls=[("skill_tiny", {})]),
        Reply(tool_calls=[("read_tiny_file", {"path": "references/guide.md"})]),
        Reply(content="Being tiny."),
    ])
    body = alice_api.post("/v1/infer", {"model_id": "m", "tool_ids": ["skill.tiny"], "text": "help"}, format="json").json()
    assert body["content"] == "Being tiny.", body
    chat = [r.json for r in fake_llm.requests if r.path in ("/v1/chat/completions", "/api/chat")]
    first_tools = {t["function"]["name"]: t["function"] for t in chat[0]["tools"]}
    assert set(first_tools) == {"skill_tiny"} and first_tools["skill_tiny"]["description"] == "A tiny skill for tests."
    assert "Do tiny things" not in str(chat[0])
    second_tools = {t["function"]["name"] for t in chat[1]["tools"]}
    assert {"skill_tiny", "read_tiny_file", "fetch"} <= second_tools
    assert "Do tiny things" in str(chat[1]["messages"]) and "Guide: be tiny." not in str(chat[1]["messages"])
    assert "Guide: be tiny." in str(sent_messages(fake_llm))


def test_builtins_exist_and_bash_is_off_by_default(staff_api: APIClient, alice_api: APIClient, settings) -> None:
    tools = {t["tool_id"]: t for t in alice_api.get("/v1/tools?tool_type=builtin").json()["data"]}
    assert tools["bash"]["enabled"] is False and tools["fetch"]["enabled"] is True
    assert_error(alice_api.post("/v1/tools/call", {"tool_id": "bash", "arguments": {"command": "echo hi"}}, format="json"), 404,
                 "tool_not_found")
    staff_api.patch("/v1/tools/bash", {"enabled": True}, format="json")
    res = alice_api.post("/v1/tools/call", {"tool_id": "bash", "arguments": {"command": "echo hi"}}, format="json").json()
    assert res["is_error"] is True and "enable" in res["content"][0]["text"]
    settings.AGENTSITE = {**settings.AGENTSITE, "BASH_ENABLED": True}
    res = alice_api.post("/v1/tools/call", {"tool_id": "bash", "arguments": {"command": "echo hi > f.txt && cat f.txt"}},
                         format="json").json()
    assert res["is_error"] is False and "hi" in res["content"][0]["text"]
    assert_error(staff_api.delete("/v1/tools/bash"), 409, "conflict")


def test_fetch_refuses_loopback_through_the_api(alice_api: APIClient, db) -> None:
    res = alice_api.post(
        "/v1/tools/call", {"tool_id": "fetch", "arguments": {"url": "http://127.0.0.1:9/"}}, format="json"
    ).json()
    assert res["is_error"] is True and "127.0.0.1" in res["content"][0]["text"]
