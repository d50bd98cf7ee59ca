from __future__ import annotations

from rest_framework.test import APIClient

from tests.api.test_registries import assert_error


def test_template_versions_and_render(staff_api: APIClient, alice_api: APIClient) -> None:
    res = staff_api.post(
        "/v1/prompt-templates", {"name": "summarize", "content": "Summarize in {{language}}:\n\n{{ text }}"}, format="json"
    )
    assert res.status_code == 201
    tpl = res.json()
    assert tpl["variables"] == ["language", "text"] and tpl["version"] == 1 and tpl["id"].startswith("pt_")
    res = staff_api.patch(f"/v1/prompt-templates/{tpl['id']}", {"content": "In {{language}}, summarize: {{text}}"}, format="json")
    assert res.json()["version"] == 2
    versions = alice_api.get("/v1/prompt-templates/summarize/versions").json()["data"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["content"].startswith("Summarize in")
    res = alice_api.post(
        "/v1/prompt-templates/summarize/render", {"arguments": {"language": "French", "text": "{{language}}"}}, format="json"
    )
    assert res.json() == {"content": "In French, summarize: {{language}}"}  # values are never scanned again


def test_render_errors(staff_api: APIClient) -> None:
    staff_api.post("/v1/prompt-templates", {"name": "t", "content": "{{a}} and {{b}}"}, format="json")
    err = assert_error(
        staff_api.post("/v1/prompt-templates/t/render", {"arguments": {"a": 1}}, format="json"), 400, "template_variables_missing"
    )
    assert err["detail"] == {"missing": ["b"]}
    assert_error(staff_api.post("/v1/prompt-templates/nope/render", {"arguments": {}}, format="json"), 404, "template_not_found")
    assert_error(staff_api.post("/v1/prompt-templates/t/render", {"arguments": "x"}, format="json"), 400, "validation_error")


def test_duplicate_template_name_is_409(staff_api: APIClient) -> None:
    staff_api.post("/v1/prompt-templates", {"name": "t", "content": "x"}, format="json")
    assert_error(staff_api.post("/v1/prompt-templates", {"name": "t", "content": "y"}, format="json"), 409, "conflict")
    staff_api.post("/v1/prompt-templates", {"name": "u", "content": "x"}, format="json")
    assert_error(staff_api.patch("/v1/prompt-templates/u", {"name": "t"}, format="json"), 409, "conflict")


def test_unchanged_update_keeps_the_version(staff_api: APIClient) -> None:
    staff_api.post("/v1/prompt-templates", {"name": "t", "content": "x"}, format="json")
    assert staff_api.put("/v1/prompt-templates/t", {"content": "x"}, format="json").json()["version"] == 1
