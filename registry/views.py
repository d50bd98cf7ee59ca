"""/v1 registry endpoints: thin views that parse, authorize, call a service, render."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import InvalidRequest, NotFound
from core.permissions import IsStaff, IsStaffOrReadOnly
from core.serializers import update_body

from . import env_store, mcp_services, model_services, services, skill_services
from .models import EnvVar, LLMModel, MCPServer, Skill, Tool
from .serializers import (
    DetectModelsSerializer,
    EnvVarSerializer,
    MCPServerSerializer,
    ModelSerializer,
    SkillSerializer,
    ToolSerializer,
)


def list_of(name: str, ser: type[serializers.Serializer]) -> serializers.Serializer:
    """The schema of a ``{"data": [...]}`` list response."""
    return inline_serializer(name, {"data": ser(many=True)})


SKILL_BODY = 'Send {"path": "/dir/on/server"} or a multipart "file" (.zip).'


def _get_or_404(qs: Any, message: str, **lookup: Any) -> Any:
    obj = qs.filter(**lookup).first()
    if obj is None:
        raise NotFound(message)
    return obj


def _valid(serializer_class: type[serializers.Serializer], data: Any, **kwargs: Any) -> dict[str, Any]:
    ser = serializer_class(data=data, **kwargs)
    ser.is_valid(raise_exception=True)
    return dict(ser.validated_data)


class ModelListView(APIView):
    permission_classes = [IsStaffOrReadOnly]

    @extend_schema(responses=list_of("ModelList", ModelSerializer))
    def get(self, request: Request) -> Response:
        return Response({"data": ModelSerializer(LLMModel.objects.all(), many=True).data})

    @extend_schema(request=ModelSerializer, responses={201: ModelSerializer})
    def post(self, request: Request) -> Response:
        row = services.model_create(data=_valid(ModelSerializer, request.data))
        return Response(ModelSerializer(row).data, status=status.HTTP_201_CREATED)


class ModelDetectView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        request=DetectModelsSerializer,
        responses=inline_serializer("DetectedModels", {"data": inline_serializer("DetectedModel", {
            "model_name": serializers.CharField(), "family": serializers.CharField(),
            "parameter_size": serializers.CharField(), "registered": serializers.BooleanField()}, many=True)}),
    )
    def post(self, request: Request) -> Response:
        return Response({"data": model_services.models_detect(**_valid(DetectModelsSerializer, request.data))})


class ModelDetailView(APIView):
    permission_classes = [IsStaffOrReadOnly]

    def _get(self, model_id: str) -> LLMModel:
        return _get_or_404(LLMModel.objects, f"No model with id {model_id!r}.", model_id=model_id)

    @extend_schema(responses=ModelSerializer)
    def get(self, request: Request, model_id: str) -> Response:
        return Response(ModelSerializer(self._get(model_id)).data)

    @extend_schema(request=ModelSerializer(partial=True), responses=ModelSerializer)
    def put(self, request: Request, model_id: str) -> Response:
        # PUT and PATCH both update only the fields given (docs/api.md).
        model = self._get(model_id)
        data = _valid(ModelSerializer, update_body(request.data), instance=model, partial=True)
        return Response(ModelSerializer(services.model_update(model=model, data=data)).data)

    patch = put

    @extend_schema(responses={204: None})
    def delete(self, request: Request, model_id: str) -> Response:
        services.model_delete(model=self._get(model_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ToolListView(APIView):
    permission_classes = [IsStaffOrReadOnly]

    @extend_schema(responses=list_of("ToolList", ToolSerializer))
    def get(self, request: Request) -> Response:
        qs = Tool.objects.select_related("server", "skill")
        tool_type = request.query_params.get("tool_type")
        if tool_type:
            qs = qs.filter(tool_type=tool_type)
        return Response({"data": ToolSerializer(qs, many=True).data})

    @extend_schema(request=ToolSerializer, responses={201: ToolSerializer})
    def post(self, request: Request) -> Response:
        row = services.tool_create(data=_valid(ToolSerializer, request.data))
        return Response(ToolSerializer(row).data, status=status.HTTP_201_CREATED)


class ToolDetailView(APIView):
    permission_classes = [IsStaffOrReadOnly]

    def _get(self, tool_id: str) -> Tool:
        return _get_or_404(Tool.objects.select_related("server", "skill"), f"No tool with id {tool_id!r}.", tool_id=tool_id)

    @extend_schema(responses=ToolSerializer)
    def get(self, request: Request, tool_id: str) -> Response:
        return Response(ToolSerializer(self._get(tool_id)).data)

    @extend_schema(request=ToolSerializer(partial=True), responses=ToolSerializer)
    def put(self, request: Request, tool_id: str) -> Response:
        tool = self._get(tool_id)
        data = _valid(ToolSerializer, update_body(request.data), instance=tool, partial=True)
        return Response(ToolSerializer(services.tool_update(tool=tool, data=data)).data)

    patch = put

    @extend_schema(responses={204: None})
    def delete(self, request: Request, tool_id: str) -> Response:
        services.tool_delete(tool=self._get(tool_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EnvListView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses=list_of("EnvList", EnvVarSerializer))
    def get(self, request: Request) -> Response:
        return Response({"data": EnvVarSerializer(EnvVar.objects.all(), many=True).data})

    @extend_schema(request=EnvVarSerializer, responses={200: EnvVarSerializer, 201: EnvVarSerializer})
    def post(self, request: Request) -> Response:
        var, created = env_store.env_set(**_valid(EnvVarSerializer, request.data))
        return Response(EnvVarSerializer(var).data, status=201 if created else 200)


class EnvDetailView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses={204: None})
    def delete(self, request: Request, key: str) -> Response:
        env_store.env_delete(key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EnvDetectView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        request=None,
        responses=inline_serializer(
            "EnvDetect",
            {
                "data": inline_serializer(
                    "EnvDetectItem",
                    {
                        "key": serializers.CharField(),
                        "set": serializers.BooleanField(),
                        "source": serializers.ChoiceField(choices=["database", "process", "missing"]),
                        "referenced_by": serializers.ListField(child=serializers.CharField()),
                    },
                    many=True,
                )
            },
        ),
    )
    def post(self, request: Request) -> Response:
        return Response({"data": env_store.env_detect()})


class MCPServerListView(APIView):
    permission_classes = [IsStaffOrReadOnly]

    @extend_schema(responses=list_of("MCPServerList", MCPServerSerializer))
    def get(self, request: Request) -> Response:
        servers = MCPServer.objects.prefetch_related("tools")
        return Response({"data": MCPServerSerializer(servers, many=True).data})

    @extend_schema(
        request=inline_serializer("MCPServersBody", {"mcpServers": serializers.DictField(child=serializers.DictField())}),
        responses=inline_serializer("MCPRegistration", {"servers": serializers.DictField(child=serializers.DictField())}),
    )
    def post(self, request: Request) -> Response:
        servers = mcp_services.mcp_parse_body(request.data)
        return Response(mcp_services.mcp_register(servers=servers))


class MCPServerDetailView(APIView):
    permission_classes = [IsStaffOrReadOnly]

    @extend_schema(responses={204: None})
    def delete(self, request: Request, server: str) -> Response:
        mcp_services.mcp_delete(name=server)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SkillListView(APIView):
    permission_classes = [IsStaffOrReadOnly]
    parser_classes = [JSONParser, MultiPartParser]  # the one upload endpoint

    @extend_schema(responses=list_of("SkillList", SkillSerializer))
    def get(self, request: Request) -> Response:
        return Response({"data": SkillSerializer(Skill.objects.all(), many=True).data})

    @extend_schema(
        request={
            "application/json": inline_serializer("SkillPath", {"path": serializers.CharField()}),
            "multipart/form-data": inline_serializer("SkillUpload", {"file": serializers.FileField()}),
        },
        responses={201: SkillSerializer},
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is not None:
            skill = skill_services.skill_register_zip(upload=upload)
        elif isinstance(request.data, dict) and isinstance(request.data.get("path"), str):
            skill = skill_services.skill_register_path(path=request.data["path"])
        else:
            raise InvalidRequest(SKILL_BODY, code="validation_error", detail={"path": "Required unless a file is uploaded."})
        return Response(SkillSerializer(skill).data, status=status.HTTP_201_CREATED)


class SkillDetailView(APIView):
    permission_classes = [IsStaffOrReadOnly]

    @extend_schema(responses=SkillSerializer)
    def get(self, request: Request, name: str) -> Response:
        return Response(SkillSerializer(_get_or_404(Skill.objects, f"No skill named {name!r}.", name=name)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, name: str) -> Response:
        skill_services.skill_delete(name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)
