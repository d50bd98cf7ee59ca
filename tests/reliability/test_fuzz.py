"""Property-based API fuzzing with schemathesis against our own OpenAPI schema (/api/schema/).

In-process (Django's WSGI handler, which also runs the async views), once as staff and once as
a plain user: no 5xx, every answer conforms to the schema (status documented, content type,
body shape), schema-invalid requests are refused (ST201) and schema-valid ones accepted
(ST202, ``positive_data_acceptance``): the schema says exactly what the server takes
(agentsite/schema.py). The async /v1/infer, /v1/infer/stream and /v1/tools/call are in the
schema and fuzzed too, with the fake model server as the only model that answers.
AGENTSITE_FUZZ_EXAMPLES (default 10) sets the examples per operation and mode.

Excluded, because their side effects are unsafe in a fuzz run:
* ``POST /v1/tools/mcp``: registers MCP servers, i.e. spawns whatever ``command`` it is given;
* ``POST /v1/tools/skill``: registers a directory of the server's filesystem as a skill (path
  registration reads arbitrary paths; the zip upload shares the operation).
Everything else runs. No real network is touched: outbound HTTP to anything but the fake model
server is refused by the engine's one transport factory, and the process environment
(``POST /v1/env`` applies values to ``os.environ``) is restored afterwards.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from agentsite import schema as schema_hooks
from inference.engine import http as engine_http
from registry.serializers import RESERVED_TOOL_IDS
from templates_app.models import PromptTemplate
from tests.factories import ADD_PARAMS, LLMModelFactory, ToolFactory, UserFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer

MAX_EXAMPLES = int(os.environ.get("AGENTSITE_FUZZ_EXAMPLES", "10"))
# Where a 502/504 is the right answer to a fuzzed input: detect connects to whatever api_base it is given,
# and a form-encoded "negative" case (e.g. api_base=866) is a valid string on the wire.
UPSTREAM_FACING = {"/v1/models/detect"}


def no_server_error(ctx: Any, response: Any, case: Any) -> None:
    """not_a_server_error, except a documented 502/504 from an operation that talks to a model server."""
    if response.status_code >= 500 and not (response.status_code in (502, 504) and case.operation.path in UPSTREAM_FACING):
        raise AssertionError(f"server error {response.status_code}: {response.text[:500]}")


CHECKS = [no_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection, positive_data_acceptance]
UNSAFE = [("POST", "/v1/tools/mcp"), ("POST", "/v1/tools/skill")]


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("network disabled in the fuzz run", request=request)


@pytest.fixture
def keep_connection(db) -> Iterator[None]:
    """As Django's test client does: the WSGI handler must not close the test's connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(keep_connection, fake_llm: FakeLLMServer) -> Iterator[dict[str, dict[str, str]]]:
    """Bearer headers for a staff user and a plain user, and a few real rows to hit."""
    headers = {role: bearer(UserFactory(username=f"fuzz-{role}", is_staff=role == "staff"), name="fuzz")
               for role in ("staff", "user")}
    # Something real to hit, so generated ids sometimes resolve.
    # The one model that answers takes images and audio: the schema cannot say which model does.
    LLMModelFactory(model_id="fake", fake=fake_llm, timeout_s=5, supports_vision=True, supports_audio=True)
    ToolFactory(tool_id="math.add", timeout_s=2, parameters=ADD_PARAMS)
    PromptTemplate.objects.create(name="greet", content="Hello {{name}}")
    fake = fake_llm.url
    engine_http.set_transport_factory(lambda base: None if base.startswith(fake) else httpx.MockTransport(_refuse))
    environ = dict(os.environ)
    try:
        yield headers
    finally:
        engine_http.set_transport_factory(None)
        os.environ.clear()
        os.environ.update(environ)


def load_schema() -> Any:
    from agentsite.wsgi import application

    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    # 413 request_too_large is how the server refuses a body over its limits (more messages than
    # AGENTSITE_MAX_MESSAGES: the schema's maxItems); schemathesis's default list of rejections lacks it.
    rejections = schema.config.checks.negative_data_rejection
    if "413" not in rejections.expected_statuses:
        rejections.expected_statuses = [*rejections.expected_statuses, "413"]
    for method, path in UNSAFE:
        schema = schema.exclude(method=method, path=path)
    return schema


def _allowed_str(value: Any, max_length: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= max_length


def _steer(case: Any, fake: FakeLLMServer) -> None:
    """Point generated model ids / api bases at the fake, so runs reach the model and back. Only
    values the schema allows are replaced: a negative case must stay as invalid as it was generated."""
    path = case.operation.path
    # /v1/tools/{mcp,skill,call}, /v1/models/detect and /v1/env/detect are other endpoints (such ids are
    # refused at registration, see the tests below).
    params = case.path_parameters or {}
    if path == "/v1/tools/{tool_id}" and params.get("tool_id") in RESERVED_TOOL_IDS:
        params["tool_id"] = "math.add"
    if path in ("/v1/models/{model_id}", "/v1/env/{key}"):
        for name in ("model_id", "key"):
            if params.get(name) == "detect":
                params[name] = "fake" if name == "model_id" else "NO_SUCH_KEY"
    body = case.body
    if not isinstance(body, dict):
        return
    if path in ("/v1/infer", "/v1/infer/stream") and _allowed_str(body.get("model_id"), 100):
        body["model_id"] = "fake"
        ids = body.get("tool_ids")
        if isinstance(ids, list) and 0 < len(ids) <= 128 and all(_allowed_str(i, 200) for i in ids):
            body["tool_ids"] = ["math.add"]
    # A callable the schema allows (a dotted path) but that would not import is a 400 (invalid_callable):
    # point it at a real one, as model ids are pointed at the fake.
    if path in ("/v1/tools", "/v1/tools/{tool_id}") and isinstance(body.get("callable"), str) \
            and re.fullmatch(schema_hooks.CALLABLE.strip("^$"), body["callable"]):
        body["callable"] = "tests.tool_fns:add"
    if path == "/v1/models/detect" and _allowed_str(body.get("api_base"), 500):
        body["api_base"] = fake.ollama_base if body.get("api_protocol") == "ollama" else fake.openai_base


def fuzz(headers: dict[str, str], fake_llm: FakeLLMServer) -> tuple[int, list[str]]:
    """Every operation, positive then negative data; (cases run, failure reports)."""
    schema = load_schema()
    runs, failures = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                nonlocal runs
                runs += 1
                _steer(case, fake_llm)
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every operation's failure, report all
                failures.append(f"{operation.label} [{mode}]: {exc}")
    return runs, failures


def test_api_as_staff(world: dict, fake_llm: FakeLLMServer) -> None:
    runs, failures = fuzz(world["staff"], fake_llm)
    print(f"fuzz as staff: {runs} cases")
    assert not failures, "\n\n".join(failures)


def test_api_as_plain_user(world: dict, fake_llm: FakeLLMServer) -> None:
    runs, failures = fuzz(world["user"], fake_llm)
    print(f"fuzz as plain user: {runs} cases")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("key", ["é-non-ascii", "ключ", "line\nbreak", "tab\there"])
def test_api_keys_that_cannot_be_a_header_are_400_not_500(staff_api, fake_llm: FakeLLMServer, key: str) -> None:
    """Found by the fuzzer: a non-ASCII api_key crashed detect with UnicodeEncodeError (500), and a
    newline made httpx quote the whole Authorization header, key included, in the 502 message."""
    res = staff_api.post("/v1/models/detect", {"api_protocol": "openai", "api_base": fake_llm.openai_base, "api_key": key},
                         format="json")
    assert res.status_code == 400 and res.json()["error"]["detail"]["api_key"], res.content
    res = staff_api.post("/v1/models", {"model_id": "k", "api_protocol": "openai", "api_base": fake_llm.openai_base,
                                        "model_name": "m", "api_key": key}, format="json")
    assert res.status_code == 400 and "api_key" in res.json()["error"]["detail"]
    # A key that reaches the engine anyway (a ${VAR} reference expanding to it) is a clean 502 that doesn't quote it.
    os.environ["FUZZ_BAD_KEY"] = key
    try:
        LLMModelFactory(model_id="k", fake=fake_llm, model_name="m", api_key="${FUZZ_BAD_KEY}")
        res = staff_api.post("/v1/infer", {"model_id": "k", "text": "hi"}, format="json")
    finally:
        del os.environ["FUZZ_BAD_KEY"]
    assert res.status_code == 502 and res.json()["error"]["code"] == "model_unavailable"
    assert key not in res.content.decode() and key.encode("unicode_escape").decode() not in res.content.decode()


@pytest.mark.parametrize(("method", "path", "body"), [
    ("post", "/v1/tools", {"tool_id": "a\x00b", "name": "x", "callable": "tests.tool_fns:add"}),
    ("post", "/v1/models", {"model_id": "a\x00b", "api_protocol": "openai", "api_base": "http://x", "model_name": "m"}),
    ("get", "/v1/tools/a%00b", None),
    ("get", "/v1/sessions/a%00b", None),
])
def test_nul_bytes_in_ids_are_400_not_500(staff_api, method: str, path: str, body: dict | None) -> None:
    """Found by the fuzzer on PostgreSQL: text cannot hold NUL, and the lookup raised DataError (a 500)."""
    res = getattr(staff_api, method)(path, body, format="json") if body else getattr(staff_api, method)(path)
    assert res.status_code in (400, 404), res.content
    codes = ("invalid_input", "validation_error", "not_found", "session_not_found", "model_not_found", "tool_not_found")
    assert res.json()["error"]["code"] in codes


@pytest.mark.parametrize("protocol", ["openai", "ollama"])
def test_an_api_base_httpx_cannot_parse_is_502_not_500(staff_api, alice_api, protocol: str) -> None:
    """Found by the fuzzer: a control character in api_base made httpx raise InvalidURL (not an HTTPError)
    while building the client, outside the upstream error mapping: a 500."""
    body = {"api_protocol": protocol, "api_base": "http://\x04bad"}
    res = staff_api.post("/v1/models/detect", body, format="json")
    assert res.status_code == 502 and res.json()["error"]["code"] == "model_unavailable", res.content
    LLMModelFactory(model_id="bad", api_protocol=protocol, api_base="http://\x04bad", model_name="m")
    res = alice_api.post("/v1/infer", {"model_id": "bad", "text": "hi"}, format="json")
    assert res.status_code == 502 and res.json()["error"]["code"] == "model_unavailable", res.content


def test_ids_shadowed_by_detect_endpoints_are_refused(staff_api) -> None:
    """Found by the fuzzer: DELETE /v1/env/detect is the detect endpoint (405), so a variable or a model
    named "detect" could never be deleted."""
    res = staff_api.post("/v1/env", {"key": "detect", "value": "x"}, format="json")
    assert res.status_code == 400 and "key" in res.json()["error"]["detail"], res.content
    res = staff_api.post("/v1/models", {"model_id": "detect", "api_protocol": "openai", "api_base": "http://x",
                                        "model_name": "m"}, format="json")
    assert res.status_code == 400 and "model_id" in res.json()["error"]["detail"], res.content


@pytest.mark.parametrize("tool_id", sorted(RESERVED_TOOL_IDS))
def test_tool_ids_shadowed_by_other_endpoints_are_refused(staff_api, tool_id: str) -> None:
    """Found by the fuzzer: GET /v1/tools/skill is the skill list, so a tool registered as "skill" could
    never be read, updated or deleted."""
    res = staff_api.post("/v1/tools", {"tool_id": tool_id, "name": "x", "callable": "tests.tool_fns:add"}, format="json")
    assert res.status_code == 400 and "tool_id" in res.json()["error"]["detail"], res.content
