"""The model admin's console: "test connection" and "detect models", against the fake server."""

from __future__ import annotations

import pytest
from django.test import Client

from registry.models import LLMModel
from tests.factories import LLMModelFactory
from tests.fakes.fake_llm import FakeLLMServer, Reply

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/registry/llmmodel/"
DETECT = "/admin/registry/llmmodel/detect/"


def _messages(res) -> list[str]:
    return [str(m) for m in res.context["messages"]]


def test_test_connection_reports_success_and_failure(admin_client: Client, fake_llm: FakeLLMServer) -> None:
    good = LLMModelFactory(model_id="good", fake=fake_llm, timeout_s=5)
    bad = LLMModelFactory(model_id="bad", api_protocol="ollama", fake=fake_llm, model_name="broken", timeout_s=5)
    fake_llm.script([Reply(content="ok")], model="fake-model")
    fake_llm.script([Reply(status=500)], model="broken")
    res = admin_client.post(CHANGELIST, {"action": "test_connection", "_selected_action": [bad.pk, good.pk]}, follow=True)
    msgs = _messages(res)
    assert any(m.startswith("bad: failed:") for m in msgs), msgs
    assert any(m.startswith("good: OK, answered in") for m in msgs), msgs


def test_the_changelist_links_to_detect_and_offers_the_action(admin_client: Client) -> None:
    LLMModelFactory(model_id="m", model_name="m")  # nothing listens on its api_base
    html = admin_client.get(CHANGELIST).content.decode()
    assert DETECT in html
    assert "Test connection to the selected models" in html


def test_detect_lists_and_registers_models_in_one_click(admin_client: Client, fake_llm: FakeLLMServer) -> None:
    fake_llm.set_model("llama3:8b")
    LLMModelFactory(model_id="already", api_protocol="ollama", fake=fake_llm)
    res = admin_client.post(
        DETECT, {"detect": "1", "api_protocol": "ollama", "api_base": fake_llm.ollama_base + "/", "api_key": "sk-secret-1"}
    )
    html = res.content.decode()
    assert res.status_code == 200 and 'value="llama3:8b"' in html and "already registered" in html
    assert "sk-secret-1" not in html  # the key stays server-side between the steps
    res = admin_client.post(DETECT, {"register": "1", "model_name": ["llama3:8b"]}, follow=True)
    assert any("Registered 1 model(s): llama3:8b" in m for m in _messages(res))
    model = LLMModel.objects.get(model_id="llama3:8b")
    assert model.api_base == fake_llm.ollama_base and model.api_protocol == "ollama" and model.api_key == "sk-secret-1"


def test_detect_shows_an_unreachable_server_in_place(admin_client: Client) -> None:
    res = admin_client.post(DETECT, {"detect": "1", "api_protocol": "openai", "api_base": "http://127.0.0.1:9/v1"})
    assert res.status_code == 200 and b"Could not list the models" in res.content


def test_detect_is_for_staff_with_add_permission(alice_client: Client) -> None:
    res = alice_client.get(DETECT)
    assert res.status_code == 302 and "/admin/login/" in res["Location"]
