"""/v1/me: the caller's own account, usage today and API keys."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from usage.selectors import quota_effective, usage_today

from . import services
from .serializers import ApiKeyCreateSerializer, ApiKeySerializer, MeSerializer


def me_of(user: Any) -> dict[str, Any]:
    """``GET /v1/me``: who the caller is, their quota and what they used today (UTC)."""
    quota = quota_effective(user=user)
    return {
        "username": user.get_username(),
        "is_staff": bool(user.is_staff),
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "quota": quota.to_dict() if quota is not None else None,
        "usage_today": usage_today(user_id=user.pk),
    }


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(me_of(request.user))


class MyApiKeyListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=inline_serializer("MyApiKeyList", {"data": ApiKeySerializer(many=True)}))
    def get(self, request: Request) -> Response:
        return Response({"data": ApiKeySerializer(services.api_keys_of(user=request.user), many=True).data})

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: inline_serializer("ApiKeyCreated", {
        **ApiKeySerializer().get_fields(),
        "key": serializers.CharField(help_text="The plaintext key: shown this once, never again."),
    })})
    def post(self, request: Request) -> Response:
        ser = ApiKeyCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        key, plaintext = services.api_key_create(user=request.user, **ser.validated_data)
        return Response({**ApiKeySerializer(key).data, "key": plaintext}, status=status.HTTP_201_CREATED)


class MyApiKeyDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(parameters=[OpenApiParameter("key_id", int, OpenApiParameter.PATH)], responses={204: None})
    def delete(self, request: Request, key_id: str) -> Response:
        # Any text matches the route, so that authentication and CSRF are checked first; a
        # key id that is not a number is simply no key of this user.
        services.api_key_revoke(user=request.user, key_id=int(key_id) if key_id.isascii() and key_id.isdigit() else -1)
        return Response(status=status.HTTP_204_NO_CONTENT)
