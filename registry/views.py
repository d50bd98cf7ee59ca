"""/v1 registry endpoints: thin views that parse, authorize, call a service, render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import InvalidRequest, NotFound, PermissionDenied
from core.permissions import IsStaff, RegistryPermission
from core.serializers import update_body

from . import access, env_store, mcp_services, model_services, rights, services, skill_services
from .models import EnvVar, LLMModel, MCPServer, Skill, Tool
from .serializers import (
    DetectModelsSerializer,
    EnvVarSerializer,
    GroupNamesSerializer,
    MCPServerSerializer,
    ModelPublicSerializer,
    ModelSerializer,
    SkillPublicSerializer,
    SkillSerializer,
    ToolPublicSerializer,
    ToolSerializer,
)


def list_of(name: str, ser: type[serializers.Serializer] | serializers.BaseSerializer) -> serializers.Serializer:
    """The schema of a ``{"data": [...]}`` list response (``ser``: a class, or a ready many=True instance)."""
    return inline_serializer(name, {"data": ser if isinstance(ser, serializers.BaseSerializer) else ser(many=True)})


def either(name: str, staff: type[serializers.Serializer], public: type[serializers.Serializer], *, many: bool = False) -> Any:
    """The schema of a read that staff see whole and everybody else as the public view."""
    return PolymorphicProxySerializer(component_name=name, serializers=[staff, public], resource_type_field_name=None, many=many)


def _view_of(request: Request, staff: type[serializers.Serializer], public: type[serializers.Serializer]) -> Any:
    """Staff see a registry entry whole; everybody else sees the public view (docs/api.md)."""
    return staff if access.sees_everything(request.user) else public


MODEL_NOT_FOUND = "No model with id {model_id!r}."
TOOL_NOT_FOUND = "No tool with id {tool_id!r}."


SKILL_BODY = 'Send {"path": "/dir/on/server"} or a multipart "file" (.zip).'


def _get_or_404(qs: Any, message: str, *, code: str | None = None, **lookup: Any) -> Any:
    obj = qs.filter(**lookup).first()
    if obj is None:
        raise NotFound(message, code=code)
    return obj


def _valid(serializer_class: type[serializers.Serializer], data: Any, **kwargs: Any) -> dict[str, Any]:
    ser = serializer_class(data=data, **kwargs)
    ser.is_valid(raise_exception=True)
    return dict(ser.validated_data)


def _tool_write_rights(request: Request, *, tool_id: str, data: dict[str, Any], enabled_before: bool | None) -> None:
    what = rights.tool_change_runs_code(tool_id=tool_id, data=data, enabled_before=enabled_before)
    if what:
        rights.require_run_code(request.user, what)


def _groups_of(data: Any) -> Any:
    """The ``allowed_groups`` a registration names (None when it names none): group rows."""
    if not isinstance(data, dict) or "allowed_groups" not in data:
        return None
    return _valid(GroupNamesSerializer, {"allowed_groups": data["allowed_groups"]})["allowed_groups"]


class ModelListView(APIView):
    permission_classes = [RegistryPermission]
    queryset = LLMModel.objects.all()

    @extend_schema(responses=list_of("ModelList", either("ModelView", ModelSerializer, ModelPublicSerializer, many=True)))
    def get(self, request: Request) -> Response:
        rows = access.visible_models(request.user, LLMModel.objects.prefetch_related("allowed_groups"))
        return Response({"data": _view_of(request, ModelSerializer, ModelPublicSerializer)(rows, many=True).data})

    @extend_schema(request=ModelSerializer, responses={201: ModelSerializer})
    def post(self, request: Request) -> Response:
        row = services.model_create(data=_valid(ModelSerializer, request.data))
        return Response(ModelSerializer(row).data, status=status.HTTP_201_CREATED)


class ModelDetectView(APIView):
    permission_classes = [RegistryPermission]  # detection is for registering: add_llmmodel
    queryset = LLMModel.objects.all()

    @extend_schema(
        request=DetectModelsSerializer,
        responses=inline_serializer("DetectedModels", {"data": inline_serializer("DetectedModel", {
            "model_name": serializers.CharField(), "family": serializers.CharField(),
            "parameter_size": serializers.CharField(), "registered": serializers.BooleanField()}, many=True)}),
    )
    def post(self, request: Request) -> Response:
        return Response({"data": model_services.models_detect(**_valid(DetectModelsSerializer, request.data))})


class ModelDetailView(APIView):
    permission_classes = [RegistryPermission]
    queryset = LLMModel.objects.all()

    def _get(self, request: Request, model_id: str) -> LLMModel:
        # Outside the caller's groups answers exactly like an unknown id.
        qs = access.visible_models(request.user, LLMModel.objects.prefetch_related("allowed_groups"))
        return _get_or_404(qs, MODEL_NOT_FOUND.format(model_id=model_id), code="model_not_found", model_id=model_id)

    @extend_schema(responses=either("ModelView", ModelSerializer, ModelPublicSerializer))
    def get(self, request: Request, model_id: str) -> Response:
        return Response(_view_of(request, ModelSerializer, ModelPublicSerializer)(self._get(request, model_id)).data)

    @extend_schema(request=ModelSerializer(partial=True), responses=ModelSerializer)
    def put(self, request: Request, model_id: str) -> Response:
        # PUT and PATCH both update only the fields given (docs/api.md).
        model = self._get(request, model_id)
        data = _valid(ModelSerializer, update_body(request.data), instance=model, partial=True)
        return Response(ModelSerializer(services.model_update(model=model, data=data)).data)

    patch = put

    @extend_schema(responses={204: None})
    def delete(self, request: Request, model_id: str) -> Response:
        services.model_delete(model=self._get(request, model_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _tools_for(request: Request) -> QuerySet[Tool]:
    return access.visible_tools(request.user, Tool.objects.select_related("server", "skill").prefetch_related("allowed_groups"))


class ToolListView(APIView):
    permission_classes = [RegistryPermission]
    queryset = Tool.objects.all()

    @extend_schema(responses=list_of("ToolList", either("ToolView", ToolSerializer, ToolPublicSerializer, many=True)))
    def get(self, request: Request) -> Response:
        qs = _tools_for(request)
        tool_type = request.query_params.get("tool_type")
        if tool_type:
            qs = qs.filter(tool_type=tool_type)
        return Response({"data": _view_of(request, ToolSerializer, ToolPublicSerializer)(qs, many=True).data})

    @extend_schema(request=ToolSerializer, responses={201: ToolSerializer})
    def post(self, request: Request) -> Response:
        data = _valid(ToolSerializer, request.data)
        _tool_write_rights(request, tool_id=data.get("tool_id", ""), data=data, enabled_before=None)
        row = services.tool_create(data=data)
        return Response(ToolSerializer(row).data, status=status.HTTP_201_CREATED)


class ToolDetailView(APIView):
    permission_classes = [RegistryPermission]
    queryset = Tool.objects.all()

    def _get(self, request: Request, tool_id: str) -> Tool:
        # Outside the caller's groups (or its server's) answers exactly like an unknown id.
        return _get_or_404(_tools_for(request), TOOL_NOT_FOUND.format(tool_id=tool_id), code="tool_not_found", tool_id=tool_id)

    @extend_schema(responses=either("ToolView", ToolSerializer, ToolPublicSerializer))
    def get(self, request: Request, tool_id: str) -> Response:
        return Response(_view_of(request, ToolSerializer, ToolPublicSerializer)(self._get(request, tool_id)).data)

    @extend_schema(request=ToolSerializer(partial=True), responses=ToolSerializer)
    def put(self, request: Request, tool_id: str) -> Response:
        tool = self._get(request, tool_id)
        data = _valid(ToolSerializer, update_body(request.data), instance=tool, partial=True)
        _tool_write_rights(request, tool_id=tool.tool_id, data=data, enabled_before=tool.enabled)
        return Response(ToolSerializer(services.tool_update(tool=tool, data=data)).data)

    patch = put

    @extend_schema(responses={204: None})
    def delete(self, request: Request, tool_id: str) -> Response:
        services.tool_delete(tool=self._get(request, tool_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# Env values steer what the server runs (PATH, LD_PRELOAD, a server's ${VAR}s): writing them
# takes registry.run_code on top of the env permissions.
class EnvListView(APIView):
    permission_classes = [IsStaff & RegistryPermission]
    queryset = EnvVar.objects.all()

    @extend_schema(responses=list_of("EnvList", EnvVarSerializer))
    def get(self, request: Request) -> Response:
        return Response({"data": EnvVarSerializer(EnvVar.objects.all(), many=True).data})

    @extend_schema(request=EnvVarSerializer, responses={200: EnvVarSerializer, 201: EnvVarSerializer})
    def post(self, request: Request) -> Response:
        data = _valid(EnvVarSerializer, request.data)
        rights.require_run_code(request.user, "Setting an environment variable")
        var, created = env_store.env_set(**data)
        return Response(EnvVarSerializer(var).data, status=201 if created else 200)


class EnvDetailView(APIView):
    permission_classes = [IsStaff & RegistryPermission]
    queryset = EnvVar.objects.all()

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
    # Servers' configs, status and errors are for staff only; everybody else sees their tools.
    permission_classes = [IsStaff & RegistryPermission]
    queryset = MCPServer.objects.all()

    @extend_schema(responses=list_of("MCPServerList", MCPServerSerializer))
    def get(self, request: Request) -> Response:
        servers = MCPServer.objects.prefetch_related("tools", "allowed_groups")
        return Response({"data": MCPServerSerializer(servers, many=True).data})

    @extend_schema(
        request=inline_serializer("MCPServersBody", {"mcpServers": serializers.DictField(child=serializers.DictField())}),
        responses=inline_serializer("MCPRegistration", {"servers": serializers.DictField(child=serializers.DictField())}),
    )
    def post(self, request: Request) -> Response:
        body, groups = _mcp_groups(request.data)
        servers = mcp_services.mcp_parse_body(body)
        if MCPServer.objects.filter(name__in=list(servers)).exists() and not request.user.has_perm("registry.change_mcpserver"):
            raise PermissionDenied("Re-posting a registered MCP server changes it: that takes registry.change_mcpserver.")
        local = rights.mcp_configs_run_code(servers)
        if local:
            rights.require_run_code(request.user, f"MCP server {local[0]!r} (a command)")
        outcome = mcp_services.mcp_register(servers=servers)
        for server in MCPServer.objects.filter(name__in=list(groups)):
            server.allowed_groups.set(groups[server.name])
        return Response(outcome)


def _mcp_groups(body: Any) -> tuple[Any, dict[str, Any]]:
    """The ``mcpServers`` body without each server's ``allowed_groups``, and those (group rows)."""
    servers = body.get("mcpServers") if isinstance(body, dict) else None
    if not isinstance(servers, dict):
        return body, {}
    groups, stripped = {}, {}
    for name, config in servers.items():
        if isinstance(config, dict) and "allowed_groups" in config:
            config = dict(config)
            groups[name] = _groups_of({"allowed_groups": config.pop("allowed_groups")})
        stripped[name] = config
    return {**body, "mcpServers": stripped}, groups


class MCPServerDetailView(APIView):
    permission_classes = [IsStaff & RegistryPermission]
    queryset = MCPServer.objects.all()

    @extend_schema(responses={204: None})
    def delete(self, request: Request, server: str) -> Response:
        mcp_services.mcp_delete(name=server)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SkillListView(APIView):
    permission_classes = [RegistryPermission]
    queryset = Skill.objects.all()
    parser_classes = [JSONParser, MultiPartParser]  # the one upload endpoint

    @extend_schema(responses=list_of("SkillList", either("SkillView", SkillSerializer, SkillPublicSerializer, many=True)))
    def get(self, request: Request) -> Response:
        rows = access.visible_skills(request.user, Skill.objects.prefetch_related("allowed_groups"))
        return Response({"data": _view_of(request, SkillSerializer, SkillPublicSerializer)(rows, many=True).data})

    @extend_schema(
        request={
            "application/json": inline_serializer("SkillPath", {"path": serializers.CharField()}),
            "multipart/form-data": inline_serializer("SkillUpload", {"file": serializers.FileField()}),
        },
        responses={201: SkillSerializer},
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        groups = _skill_groups(request)
        if upload is not None:
            if rights.zip_has_scripts(upload):
                rights.require_run_code(request.user, "A skill holding scripts")
            skill = skill_services.skill_register_zip(upload=upload)
        elif isinstance(request.data, dict) and isinstance(request.data.get("path"), str):
            folder = Path(request.data["path"])
            if folder.is_dir() and rights.folder_has_scripts(folder):
                rights.require_run_code(request.user, "A skill holding scripts")
            skill = skill_services.skill_register_path(path=request.data["path"])
        else:
            raise InvalidRequest(SKILL_BODY, code="validation_error", detail={"path": "Required unless a file is uploaded."})
        if groups is not None:
            skill.allowed_groups.set(groups)
        return Response(SkillSerializer(skill).data, status=status.HTTP_201_CREATED)


def _skill_groups(request: Request) -> Any:
    """A skill registration's ``allowed_groups``: a JSON list, or repeated multipart fields."""
    if request.FILES:
        names = request.POST.getlist("allowed_groups") if "allowed_groups" in request.POST else None
        return None if names is None else _groups_of({"allowed_groups": names})
    return _groups_of(request.data)


class SkillDetailView(APIView):
    permission_classes = [RegistryPermission]
    queryset = Skill.objects.all()

    @extend_schema(responses=either("SkillView", SkillSerializer, SkillPublicSerializer))
    def get(self, request: Request, name: str) -> Response:
        qs = access.visible_skills(request.user, Skill.objects.prefetch_related("allowed_groups"))
        skill = _get_or_404(qs, f"No skill named {name!r}.", name=name)
        return Response(_view_of(request, SkillSerializer, SkillPublicSerializer)(skill).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, name: str) -> Response:
        skill_services.skill_delete(name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)
