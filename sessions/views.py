from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services
from .serializers import SessionDetailSerializer, SessionSummarySerializer


class SessionListView(APIView):
    @extend_schema(responses=inline_serializer("SessionList", {"data": SessionSummarySerializer(many=True)}))
    def get(self, request: Request) -> Response:
        sessions = selectors.session_list_for_user(user=request.user)
        return Response({"data": SessionSummarySerializer(sessions, many=True).data})


class SessionDetailView(APIView):
    @extend_schema(responses=SessionDetailSerializer)
    def get(self, request: Request, session_id: str) -> Response:
        session = selectors.session_get_for_user(session_id=session_id, user=request.user)
        return Response(SessionDetailSerializer(session).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, session_id: str) -> Response:
        services.session_delete(session=selectors.session_get_for_user(session_id=session_id, user=request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionCancelView(APIView):
    @extend_schema(request=None, responses={202: inline_serializer("CancelAccepted", {"status": serializers.CharField()})})
    def post(self, request: Request, session_id: str) -> Response:
        services.session_cancel(session=selectors.session_get_for_user(session_id=session_id, user=request.user))
        return Response({"status": "cancelling"}, status=status.HTTP_202_ACCEPTED)
