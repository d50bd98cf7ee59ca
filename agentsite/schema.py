"""OpenAPI additions (drf-spectacular): the Bearer API-key scheme, the async inference views,
request bodies that say exactly what the server accepts (closed, with the serializers'
patterns and cross-field rules: checked at random by tests/reliability/test_fuzz.py) and the
error envelope on every /v1 operation.

``/v1/infer``, ``/v1/infer/stream`` and ``/v1/tools/call`` are plain async Django views (DRF is
sync), so spectacular cannot see them. A preprocessing hook adds schema-only APIViews for them,
described with the serializers the views really validate with; a postprocessing hook documents
the ``{"error": {"code", "message", "detail"}}`` answers each operation can give.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.views import APIView

from inference.engine import ADAPTERS
from inference.serializers import (
    InferRequestSerializer,
    InferResponseSerializer,
    MessageSerializer,
    ToolCallRequestSerializer,
    ToolCallResponseSerializer,
    default_tool_rounds,
)
from registry.serializers import (
    RESERVED_TOOL_IDS,
    DetectModelsSerializer,
    EnvVarSerializer,
    ModelSerializer,
    ToolSerializer,
)

ERROR_COMPONENT = "Error"
_UNSAFE = {"post", "put", "patch", "delete"}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.auth.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": "A per-user API key: `Authorization: Bearer ask_…`."}


class ThinkFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "inference.serializers.ThinkField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return {"oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["low", "medium", "high", "max"]}], "nullable": True}


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable snake_case identifier, e.g. `model_not_found`.")
    message = serializers.CharField(help_text="For humans.")
    detail = serializers.JSONField(help_text="Structured data; for a validation error, the offending fields.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


# ---- schema-only views for the async endpoints ---------------------------------------------------

_INFER_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid body, unsupported input, missing template variables."),
    404: OpenApiResponse(ErrorSerializer, description="Unknown model, tool, template or session."),
    409: OpenApiResponse(ErrorSerializer, description="`session_busy`: the session is running another request."),
}


class _AsyncViewSchema(APIView):
    """Never routed: a stand-in describing one of the async views. They read JSON bodies only."""

    parser_classes = [JSONParser]


SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["session", "delta", "tool_call", "tool_result", "message", "done", "error"]},
        "data": {"type": "string", "description": "A JSON object; for `done`, exactly what /v1/infer answers."},
    },
    "required": ["event", "data"],
}


class InferSchemaView(_AsyncViewSchema):

    @extend_schema(
        operation_id="v1_infer",
        tags=["v1"],
        summary="Run a model with tools and answer the final JSON.",
        description="The tool loop runs until the model answers without tool calls (or `max_tool_rounds`).",
        request=InferRequestSerializer,
        responses={
            200: InferResponseSerializer,
            **_INFER_ERRORS,
            502: OpenApiResponse(ErrorSerializer, description="`model_unavailable`: the model server failed."),
            504: OpenApiResponse(ErrorSerializer, description="`model_timeout`."),
        },
    )
    def post(self, request: Any) -> None:  # pragma: no cover - schema only
        raise NotImplementedError


class InferStreamSchemaView(_AsyncViewSchema):

    @extend_schema(
        operation_id="v1_infer_stream",
        tags=["v1"],
        summary="The same run as Server-Sent Events (session, delta, tool_call, tool_result, message, done, error).",
        description="Failures found before the stream starts are JSON errors; afterwards they arrive as an `error` event.",
        request=InferRequestSerializer,
        responses={
            (200, "text/event-stream"): OpenApiResponse(SSE_EVENT, description="An SSE stream; `data` is JSON."),
            **_INFER_ERRORS,
        },
    )
    def post(self, request: Any) -> None:  # pragma: no cover - schema only
        raise NotImplementedError


class ToolCallSchemaView(_AsyncViewSchema):

    @extend_schema(
        operation_id="v1_tools_call",
        tags=["v1"],
        summary="Call one tool directly, without a model.",
        description="A tool that raises answers 200 with `is_error: true`.",
        request=ToolCallRequestSerializer,
        responses={
            200: ToolCallResponseSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Invalid body, or arguments failing the tool's schema."),
            404: OpenApiResponse(ErrorSerializer, description="Unknown tool or session."),
        },
    )
    def post(self, request: Any) -> None:  # pragma: no cover - schema only
        raise NotImplementedError


ASYNC_VIEWS = [
    ("/v1/infer", r"^v1/infer$", InferSchemaView),
    ("/v1/infer/stream", r"^v1/infer/stream$", InferStreamSchemaView),
    ("/v1/tools/call", r"^v1/tools/call$", ToolCallSchemaView),
]


def add_async_views(endpoints: list[tuple], **kwargs: Any) -> list[tuple]:
    """PREPROCESSING_HOOK: add the async views, which spectacular's URL walk cannot describe."""
    known = {(path, method) for path, _, method, _ in endpoints}
    extra = [(path, regex, "POST", view.as_view()) for path, regex, view in ASYNC_VIEWS if (path, "POST") not in known]
    return [*endpoints, *extra]


# ---- request bodies: what the strict serializers really accept ----------------------------------
#
# The server refuses unknown fields (core.serializers), so every strict request body says
# ``additionalProperties: false``; a string field refuses NUL and is not
# trimmed (lone surrogates, which DRF also refuses, are no JSON Schema regex can name: the
# validators' regex engines have no surrogate code points); the cross-field rules of the
# serializers are written out where OpenAPI can say them.

NO_NUL = "^[^\\x00]*$"
URL_OR_VAR = "^(?:https?://|\\$\\{)[^\\x00]*$"  # validate_api_base / the endpoint check
PRINTABLE_ASCII = "^[\\x20-\\x7e]*$"  # validate_header_value: the key travels in an HTTP header
CALLABLE = "^[A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*)*[:.][A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*)*$"
# Standard base64 whose first bytes are a PNG, JPEG, GIF or WEBP signature (what the engine sniffs).
IMAGE_BASE64 = (
    "^(?:[dD][aA][tT][aA]:[^,\\x00]*,)?"
    "(?:iVBORw0KGg[o-r][A-Za-z0-9+/]|/9j/|R0lGOD[dl]h|UklGR[g-v][A-Za-z0-9+/]{4}[BFJNRVZdhlptx159]XRUJQ)"
    "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
)
# A tool's parameters are a JSON Schema of an object, checked against the meta-schema: the
# keywords written out here are the ones any generated or hand-written body is likely to use.
_KEYWORDS: dict[str, Any] = {
    "description": {"type": "string"},
    "format": {"type": "string"},
    "required": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
}
PARAMETERS = {
    "type": "object",
    "description": "A JSON Schema of an object (checked against the meta-schema): `type`, if given, is `object`.",
    "properties": {
        **_KEYWORDS,
        "type": {"type": "string", "enum": ["object"]},
        # each property's schema: an object, or true/false (a JSON Schema may be a boolean)
        "properties": {"type": "object", "additionalProperties": {"oneOf": [{"type": "boolean"}, {
            "type": "object",
            "properties": {
                **_KEYWORDS,
                "type": {"type": "string", "enum": ["string", "number", "integer", "boolean", "array", "object", "null"]},
            },
        }]}},
    },
}
TEXT_ITEM = {"type": "object", "required": ["type", "text"],
             "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}}}
IMAGE_ITEM = {"type": "object", "required": ["type", "data"],
              "properties": {"type": {"type": "string", "enum": ["image"]}, "data": {"type": "string", "pattern": IMAGE_BASE64},
                             "mimeType": {"description": "Ignored: the type is sniffed from the bytes."}}}
TOOL_ITEMS = [
    TEXT_ITEM,
    IMAGE_ITEM,
    {"type": "object", "required": ["type", "data"],
     "properties": {"type": {"type": "string", "enum": ["audio"]}, "data": {"type": "string"}}},
    {"type": "object", "required": ["type", "resource"],
     "properties": {"type": {"type": "string", "enum": ["resource"]},
                    "resource": {"type": "object", "properties": {"text": {"type": "string"}, "uri": {"type": "string"}}}}},
    {"type": "object", "required": ["type", "uri"],
     "properties": {"type": {"type": "string", "enum": ["resource_link"]}, "uri": {"type": "string"}}},
    {"type": "object", "required": ["type"], "description": "Another item type: it reaches the model as its JSON text.",
     "properties": {"type": {"type": "string", "not": {"enum": ["text", "image", "audio", "resource", "resource_link"]}}}},
]


def _only(*values: str) -> dict[str, Any]:
    """A string that is one of ``values``. Wrapped in ``allOf``: spectacular's enum hook would
    otherwise merge this narrower choice set into the field's full enum component."""
    return {"type": "string", "allOf": [{"enum": list(values)}]}


def _content(*items: dict[str, Any]) -> dict[str, Any]:
    item = items[0] if len(items) == 1 else {"oneOf": list(items)}
    return {"oneOf": [{"type": "string"}, {"type": "array", "items": item}]}


def _role(role: str, content: dict[str, Any], *, media: bool = False, template: bool = True) -> dict[str, Any]:
    branch: dict[str, Any] = {"properties": {"role": _only(role), "content": content}}
    if role != "user":
        branch["required"] = ["role"]  # no role is a user message
    if not media:  # images and audio belong in user messages
        branch["properties"].update(images={"type": "array", "maxItems": 0}, audio={"type": "array", "maxItems": 0})
    if not template:  # only user and system messages can use a template
        branch["not"] = {"required": ["prompt_template"]}
    return branch


def options_schema() -> dict[str, Any]:
    """Options when the protocol is not known here (it is the model's): the names every protocol
    gives the same type. Each protocol checks its other names itself (a name one protocol knows
    passes another untouched), which no single schema can say."""
    tables = [adapter.option_types for adapter in ADAPTERS.values()]
    shared = {name: t for name, t in tables[0].items() if all(table.get(name) == t for table in tables[1:])}
    return {"type": "object", "properties": {name: t.json_schema() for name, t in sorted(shared.items())},
            "additionalProperties": {},
            "description": "The protocol's own option names (docs/api.md). Listed: the names every protocol "
                           "gives the same type; any other name the model's protocol knows is checked by it (400)."}


def _model_rules(schema: dict[str, Any], partial: bool) -> None:
    props = schema["properties"]
    props["api_base"]["pattern"] = URL_OR_VAR
    props["api_key"]["pattern"] = PRINTABLE_ASCII
    if partial:  # model_id cannot be changed
        props.pop("model_id", None)
    else:
        props["model_id"]["not"] = {"enum": ["detect"]}
    # The options follow the protocol named with them (else the stored one: what all protocols take).
    branches = [{"required": ["api_protocol"],
                 "properties": {"api_protocol": _only(name),
                                "options": {"type": "object", "additionalProperties": {},
                                            "properties": {k: t.json_schema() for k, t in adapter.option_types.items()}}}}
                for name, adapter in ADAPTERS.items()]
    if partial:
        branches.append({"not": {"required": ["api_protocol"]}, "properties": {"options": options_schema()}})
    schema["anyOf"] = branches


def _tool_rules(schema: dict[str, Any], partial: bool) -> None:
    props = schema["properties"]
    props["parameters"] = PARAMETERS
    # empty is no target (the one-target rule below); else an import path or a URL
    props["callable"]["pattern"] = f"^$|{CALLABLE}"
    props["endpoint"]["pattern"] = f"^$|{URL_OR_VAR}"
    if partial:  # tool_id and tool_type cannot be changed; an update names one target, replacing the other
        props.pop("tool_id", None)
        props.pop("tool_type", None)
        props["callable"]["minLength"] = props["endpoint"]["minLength"] = 1
        schema["not"] = {"required": ["callable", "endpoint"]}
        return
    props["tool_id"]["not"] = {"enum": sorted(RESERVED_TOOL_IDS)}
    props["tool_type"] = {**_only("function"), "description": "Only function tools are created here."}
    schema["oneOf"] = [  # exactly one non-empty target
        {"required": ["callable"], "properties": {"callable": {"minLength": 1}, "endpoint": {"maxLength": 0}}},
        {"required": ["endpoint"], "properties": {"endpoint": {"minLength": 1}, "callable": {"maxLength": 0}}},
    ]


def _env_rules(schema: dict[str, Any], partial: bool) -> None:
    schema["properties"]["key"]["not"] = {"enum": ["detect"]}


def _detect_rules(schema: dict[str, Any], partial: bool) -> None:
    schema["properties"]["api_key"]["pattern"] = PRINTABLE_ASCII


def _infer_rules(schema: dict[str, Any], partial: bool) -> None:
    conf = settings.AGENTSITE
    props = schema["properties"]
    limit = conf["MAX_TOOL_ROUNDS_LIMIT"]  # the start-up value: a live one set later is not shown here
    props["max_tool_rounds"].update(maximum=limit, default=default_tool_rounds(limit))
    props["messages"]["maxItems"] = conf["MAX_MESSAGES"]
    props["options"] = options_schema()
    schema["allOf"] = [
        {"anyOf": [{"required": ["text"]}, {"required": ["messages"], "properties": {"messages": {"minItems": 1}}}]},
        {"anyOf": [{"required": ["model_id"]}, {"required": ["agent"]}]},  # an agent brings its model
    ]


def _message_rules(schema: dict[str, Any], partial: bool) -> None:
    props = schema["properties"]
    props["content"] = {**_content({"type": "object"}), "default": ""}
    props["images"]["items"] = {"type": "string", "pattern": IMAGE_BASE64,
                                "maxLength": (settings.AGENTSITE["MAX_IMAGE_BYTES"] + 2) // 3 * 4}
    schema["anyOf"] = [
        _role("user", _content(TEXT_ITEM, IMAGE_ITEM), media=True),
        _role("system", _content(TEXT_ITEM)),
        _role("assistant", _content(TEXT_ITEM), template=False),
        _role("tool", _content(*TOOL_ITEMS), template=False),
    ]


def _tool_call_rules(schema: dict[str, Any], partial: bool) -> None:
    schema["oneOf"] = [
        {"required": ["tool_id"], "not": {"anyOf": [{"required": ["server"]}, {"required": ["tool"]}]}},
        {"required": ["server", "tool"], "not": {"required": ["tool_id"]}},
    ]


REQUEST_RULES: dict[type, Callable[[dict[str, Any], bool], None]] = {
    ModelSerializer: _model_rules,
    ToolSerializer: _tool_rules,
    EnvVarSerializer: _env_rules,
    DetectModelsSerializer: _detect_rules,
    InferRequestSerializer: _infer_rules,
    MessageSerializer: _message_rules,
    ToolCallRequestSerializer: _tool_call_rules,
}


def _strict_strings(schema: dict[str, Any], serializer: Any) -> None:
    """DRF's CharField refuses NUL; where no pattern says more, say that."""
    for name, field in serializer.fields.items():
        prop = schema.get("properties", {}).get(name)
        if prop is None:
            continue
        if isinstance(field, serializers.ListField) and isinstance(field.child, serializers.CharField):
            prop = prop.get("items", {})
            field = field.child
        if isinstance(field, serializers.CharField) and prop.get("type") == "string" and "pattern" not in prop:
            prop["pattern"] = NO_NUL


class StrictSerializerSchema(OpenApiSerializerExtension):
    """Request bodies of the strict serializers: closed, with the rules above."""

    target_class = "core.serializers._RejectUnknown"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction != "request":
            return schema
        serializer = self.target if not isinstance(self.target, type) else self.target()
        partial = bool(getattr(serializer, "partial", False))
        schema["additionalProperties"] = False
        _strict_strings(schema, serializer)
        rules = REQUEST_RULES.get(type(serializer))
        if rules is not None:
            rules(schema, partial)
        if partial:  # PUT/PATCH: an empty body is refused ("Nothing to update")
            schema["minProperties"] = 1
        return schema


class PublicViewSchema(OpenApiSerializerExtension):
    """The non-staff view of a registry entry: closed, so each read matches exactly one of the
    ``oneOf`` shapes (staff's view has more fields)."""

    target_class = "registry.serializers.PublicView"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        return schema


def require_bodies(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """POSTPROCESSING_HOOK: a body whose schema requires something (a field, one of several, or
    any field at all for an update) cannot be left out: the server answers 400 without it."""
    components = result.get("components", {}).get("schemas", {})
    for item in result.get("paths", {}).values():
        for operation in item.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if not body:
                continue
            for media in body.get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                schema = components.get(ref.rsplit("/", 1)[-1], {}) if ref else media.get("schema", {})
                if any(key in schema for key in ("required", "minProperties", "oneOf", "anyOf", "allOf")):
                    body["required"] = True
    return result


# ---- the error envelope on every operation ----------------------------------------------------------

_DESCRIPTIONS = {
    "400": "Invalid input (`validation_error`, `malformed_json`, …).",
    "401": "No credentials, or a bad or revoked API key.",
    "403": "Not allowed (staff-only writes), or a missing CSRF token with session authentication.",
    "404": "No such object (another user's session is also 404).",
    "413": "`request_too_large`: the body, or its number of messages, is over the server's limits.",
    "415": "The request body's media type is not accepted.",
    "409": "Conflicts with the current state (duplicate id, busy session, nothing to cancel, …).",
    "502": "`model_unavailable`: the model server could not be reached or answered an error.",
    "504": "`model_timeout`: the model server timed out.",
    "503": "`overloaded`: the worker sheds new work (see `Retry-After`); what it accepted goes on.",
}
# Operations (besides the inference views, described above) that talk to a model server.
_UPSTREAM = {("/v1/models/detect", "post")}


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["401", "403", "503"]
    if operation.get("requestBody") or method in _UNSAFE:
        statuses.append("400")
    if operation.get("requestBody"):
        statuses += ["413", "415"]
    if "{" in path or path in ("/v1/infer", "/v1/infer/stream", "/v1/tools/call"):
        statuses.append("404")
    if method in _UNSAFE:
        statuses.append("409")
    if (path, method) in _UPSTREAM:
        statuses += ["502", "504"]
    return statuses


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """POSTPROCESSING_HOOK: the error envelope component and the 4xx answers of each /v1 operation."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ErrorBody", {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "detail": {"description": "Structured data; for a validation error, the offending fields."},
        },
        "required": ["code", "message", "detail"],
    })  # fmt: skip
    components.setdefault(ERROR_COMPONENT, {
        "type": "object",
        "properties": {"error": {"$ref": "#/components/schemas/ErrorBody"}},
        "required": ["error"],
    })
    ref = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path, item in result.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for code in _error_statuses(path, method, operation):
                if code not in responses:
                    responses[code] = {"description": _DESCRIPTIONS[code], "content": {"application/json": {"schema": ref}}}
    return result
