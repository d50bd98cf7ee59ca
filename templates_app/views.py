from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import RegistryPermission
from core.serializers import update_body

from . import services
from .models import PromptTemplate
from .serializers import PromptTemplateSerializer, PromptTemplateVersionSerializer, RenderResultSerializer, RenderSerializer


class TemplateListView(APIView):
    permission_classes = [RegistryPermission]  # writes: staff with the template permissions
    queryset = PromptTemplate.objects.all()

    @extend_schema(responses=inline_serializer("TemplateList", {"data": PromptTemplateSerializer(many=True)}))
    def get(self, request: Request) -> Response:
        return Response({"data": PromptTemplateSerializer(services.template_list(), many=True).data})

    @extend_schema(request=PromptTemplateSerializer, responses={201: PromptTemplateSerializer})
    def post(self, request: Request) -> Response:
        ser = PromptTemplateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        tpl = services.template_create(**ser.validated_data)
        return Response(PromptTemplateSerializer(tpl).data, status=status.HTTP_201_CREATED)


class TemplateDetailView(APIView):
    permission_classes = [RegistryPermission]  # writes: staff with the template permissions
    queryset = PromptTemplate.objects.all()

    @extend_schema(responses=PromptTemplateSerializer)
    def get(self, request: Request, id_or_name: str) -> Response:
        return Response(PromptTemplateSerializer(services.template_get(id_or_name=id_or_name)).data)

    @extend_schema(request=PromptTemplateSerializer(partial=True), responses=PromptTemplateSerializer)
    def put(self, request: Request, id_or_name: str) -> Response:
        tpl = services.template_get(id_or_name=id_or_name)
        ser = PromptTemplateSerializer(tpl, data=update_body(request.data), partial=True)
        ser.is_valid(raise_exception=True)
        tpl = services.template_update(template=tpl, changes=ser.validated_data)
        return Response(PromptTemplateSerializer(tpl).data)

    patch = put

    @extend_schema(responses={204: None})
    def delete(self, request: Request, id_or_name: str) -> Response:
        services.template_delete(template=services.template_get(id_or_name=id_or_name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TemplateVersionsView(APIView):
    @extend_schema(responses=inline_serializer("TemplateVersions", {"data": PromptTemplateVersionSerializer(many=True)}))
    def get(self, request: Request, id_or_name: str) -> Response:
        tpl = services.template_get(id_or_name=id_or_name)
        return Response({"data": PromptTemplateVersionSerializer(tpl.versions.all(), many=True).data})


class TemplateRenderView(APIView):
    @extend_schema(request=RenderSerializer, responses=RenderResultSerializer)
    def post(self, request: Request, id_or_name: str) -> Response:
        ser = RenderSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        return Response({"content": services.template_render(id_or_name=id_or_name, **ser.validated_data)})
