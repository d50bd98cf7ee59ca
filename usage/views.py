"""/v1/usage (everyone: their own; staff: everyone's) and /v1/quotas (staff)."""

from __future__ import annotations

from django.db.models import F
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import IsStaff

from . import selectors, services
from .models import Quota
from .serializers import QuotaInputSerializer, QuotaSerializer, UsageQuerySerializer, UsageRowSerializer, UsageTotalSerializer

USAGE_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="First UTC day (inclusive); default: 29 days before `to`."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last UTC day (inclusive); default: today."),
    OpenApiParameter("group_by", str, enum=list(selectors.GROUP_FIELDS), description="Default: day."),
    OpenApiParameter(
        "user", str, pattern="^[^\\x00]*$",
        description="Staff only: one user's usage (blank: everyone). Others always see their own.",
    ),
]


class UsageView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=USAGE_PARAMETERS,
        responses={
            200: inline_serializer("UsageReport", {"data": UsageRowSerializer(many=True), "total": UsageTotalSerializer()}),
            400: OpenApiResponse(description="validation_error: a date that is not YYYY-MM-DD, an unknown `group_by`."),
        },
    )
    def get(self, request: Request) -> Response:
        # A plain dict, not the QueryDict: DRF reads an empty form value as "not given", and the
        # schema says ``to=`` is not a date (400 like any other bad value).
        query = UsageQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        q = query.validated_data
        # Non-staff see their own figures whatever ``user`` says: never another user's.
        user = (q.get("user") or None) if request.user.is_staff else request.user.get_username()
        records = selectors.usage_records(start=q["start"], end=q["to"], user=user)
        return Response(selectors.usage_grouped(records, group_by=q["group_by"]))


class QuotaListView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses=inline_serializer("QuotaList", {"data": QuotaSerializer(many=True)}))
    def get(self, request: Request) -> Response:
        # groups first, then users, by name: NULLs sort first on SQLite but last on PostgreSQL
        quotas = Quota.objects.select_related("user", "group").order_by(
            F("user__username").asc(nulls_first=True), F("group__name").asc(nulls_first=True)
        )
        return Response({"data": QuotaSerializer(quotas, many=True).data})


class QuotaDetailView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=QuotaInputSerializer, responses={200: QuotaSerializer, 201: QuotaSerializer})
    def put(self, request: Request, scope: str, name: str) -> Response:
        ser = QuotaInputSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        quota, created = services.quota_set(scope=scope, name=name, **ser.validated_data)
        return Response(QuotaSerializer(quota).data, status=201 if created else 200)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, scope: str, name: str) -> Response:
        services.quota_delete(scope=scope, name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)
