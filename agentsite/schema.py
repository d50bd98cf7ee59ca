"""OpenAPI additions (drf-spectacular): the Bearer API-key scheme, the async inference views and
the error envelope on every /v1 operation.

``/v1/infer``, ``/v1/infer/stream`` and ``/v1/tools/call`` are plain async Django views (DRF is
sync), so spectacular cannot see them. A preprocessing hook adds schema-only APIViews for them,
described with the serializers the views really validate with; a postprocessing hook documents
the ``{"error": {"code", "message", "detail"}}`` answers each operation can give.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.views import APIView

from inference.serializers import (
    InferRequestSerializer,
    InferResponseSerializer,
    ToolCallRequestSerializer,
    ToolCallResponseSerializer,
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


# ---- the error envelope on every operation ----------------------------------------------------------

_DESCRIPTIONS = {
    "400": "Invalid input (`validation_error`, `malformed_json`, …).",
    "401": "No credentials, or a bad or revoked API key.",
    "403": "Not allowed (staff-only writes), or a missing CSRF token with session authentication.",
    "404": "No such object (another user's session is also 404).",
    "415": "The request body's media type is not accepted.",
    "409": "Conflicts with the current state (duplicate id, busy session, nothing to cancel, …).",
    "502": "`model_unavailable`: the model server could not be reached or answered an error.",
    "504": "`model_timeout`: the model server timed out.",
}
# Operations (besides the inference views, described above) that talk to a model server.
_UPSTREAM = {("/v1/models/detect", "post")}


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["401", "403"]
    if operation.get("requestBody") or method in _UNSAFE:
        statuses.append("400")
    if operation.get("requestBody"):
        statuses.append("415")
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
