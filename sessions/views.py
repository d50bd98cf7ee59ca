from __future__ import annotations

from collections.abc import Iterable

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ValidationFailed
from core.serializers import StrictSerializer

from . import export, selectors, services
from .serializers import SessionDetailSerializer, SessionSummarySerializer


class SessionListView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("q", str, description="Only sessions whose title or message text contains this.")],
        responses=inline_serializer("SessionList", {"data": SessionSummarySerializer(many=True)}),
    )
    def get(self, request: Request) -> Response:
        sessions = selectors.session_list_for_user(user=request.user, q=request.query_params.get("q", ""))
        return Response({"data": SessionSummarySerializer(sessions, many=True).data})


class SessionDetailView(APIView):
    class RenameSerializer(StrictSerializer):
        title = serializers.CharField(max_length=services.RENAME_MAX, allow_blank=True)

    @extend_schema(responses=SessionDetailSerializer)
    def get(self, request: Request, session_id: str) -> Response:
        session = selectors.session_get_for_user(session_id=session_id, user=request.user)
        return Response(SessionDetailSerializer(session).data)

    @extend_schema(request=RenameSerializer, responses=SessionSummarySerializer)
    def patch(self, request: Request, session_id: str) -> Response:
        session = selectors.session_get_for_user(session_id=session_id, user=request.user)
        body = self.RenameSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        session = services.session_rename(session=session, title=body.validated_data["title"])
        return Response(SessionSummarySerializer(session).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, session_id: str) -> Response:
        services.session_delete(session=selectors.session_get_for_user(session_id=session_id, user=request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class IgnoreFormatOverride(DefaultContentNegotiation):
    """The export's own ``?format=`` names the download; DRF must not read it as a renderer
    choice (which would answer 404 for ``markdown``). Errors are still JSON."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class SessionExportView(APIView):
    content_negotiation_class = IgnoreFormatOverride

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=list(export.FORMATS), description="markdown (default) or json")],
        responses={(200, "text/markdown"): OpenApiTypes.STR, (200, "application/json"): OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, session_id: str) -> HttpResponse:
        session = selectors.session_get_for_user(session_id=session_id, user=request.user)
        fmt = request.query_params.get("format", "markdown")
        if fmt == "markdown":
            body, mime, ext = export.session_markdown(session=session), "text/markdown; charset=utf-8", "md"
        elif fmt == "json":
            body, mime, ext = export.session_json(session=session), "application/json", "json"
        else:
            raise ValidationFailed(f"format: {export.UNKNOWN_FORMAT}", detail={"format": [export.UNKNOWN_FORMAT]})
        response = HttpResponse(body, content_type=mime)
        # The id is [a-z0-9_] only (new_session_id), so it is safe in the header as it is.
        response["Content-Disposition"] = f'attachment; filename="chat-{session.pk}.{ext}"'
        return response


class SessionCancelView(APIView):
    @extend_schema(request=None, responses={202: inline_serializer("CancelAccepted", {"status": serializers.CharField()})})
    def post(self, request: Request, session_id: str) -> Response:
        services.session_cancel(session=selectors.session_get_for_user(session_id=session_id, user=request.user))
        return Response({"status": "cancelling"}, status=status.HTTP_202_ACCEPTED)
