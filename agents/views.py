"""/v1/agents: thin views that parse, authorize, call a service, render."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import RegistryPermission
from core.serializers import update_body

from . import selectors, services
from .models import Agent
from .serializers import AgentPublicSerializer, AgentSerializer


def _serializer_for(user: Any) -> type[AgentSerializer] | type[AgentPublicSerializer]:
    return AgentSerializer if user.is_staff else AgentPublicSerializer


def _valid(data: Any, **kwargs: Any) -> dict[str, Any]:
    ser = AgentSerializer(data=data, **kwargs)
    ser.is_valid(raise_exception=True)
    return dict(ser.validated_data)


class AgentListView(APIView):
    permission_classes = [RegistryPermission]  # writes: staff with add/change/delete_agent
    queryset = Agent.objects.all()

    @extend_schema(responses=inline_serializer("AgentList", {"data": AgentSerializer(many=True)}))
    def get(self, request: Request) -> Response:
        user = request.user
        rows = Agent.objects.all() if user.is_staff else selectors.agents_for_user(user=user)
        return Response({"data": _serializer_for(user)(rows.prefetch_related("allowed_groups"), many=True).data})

    @extend_schema(request=AgentSerializer, responses={201: AgentSerializer})
    def post(self, request: Request) -> Response:
        agent = services.agent_create(data=_valid(request.data))
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)


class AgentDetailView(APIView):
    permission_classes = [RegistryPermission]
    queryset = Agent.objects.all()

    def _get(self, request: Request, name: str) -> Agent:
        if request.user.is_staff:
            agent = Agent.objects.filter(name=name).first()
            if agent is None:
                raise selectors.AgentNotFound(selectors.AGENT_NOT_FOUND.format(name=name))
            return agent
        return selectors.agent_get_for_user(name=name, user=request.user)

    @extend_schema(responses=AgentSerializer)
    def get(self, request: Request, name: str) -> Response:
        return Response(_serializer_for(request.user)(self._get(request, name)).data)

    @extend_schema(request=AgentSerializer(partial=True), responses=AgentSerializer)
    def put(self, request: Request, name: str) -> Response:
        # PUT and PATCH both update only the fields given, as the other registries.
        agent = self._get(request, name)
        data = _valid(update_body(request.data), instance=agent, partial=True)
        return Response(AgentSerializer(services.agent_update(agent=agent, data=data)).data)

    patch = put

    @extend_schema(responses={204: None})
    def delete(self, request: Request, name: str) -> Response:
        services.agent_delete(agent=self._get(request, name))
        return Response(status=status.HTTP_204_NO_CONTENT)
