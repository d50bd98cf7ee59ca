from __future__ import annotations

from rest_framework import serializers

from core.serializers import StrictModelSerializer, StrictSerializer
from inference.engine import template_variables

from .models import PromptTemplate, PromptTemplateVersion


class PromptTemplateSerializer(StrictModelSerializer):
    variables = serializers.SerializerMethodField()

    class Meta:
        model = PromptTemplate
        fields = ["id", "name", "content", "description", "variables", "version", "created_at", "updated_at"]
        read_only_fields = ["id", "version", "created_at", "updated_at"]
        extra_kwargs = {"name": {"validators": []}, "content": {"max_length": 200_000}}

    def get_variables(self, obj: PromptTemplate) -> list[str]:
        return template_variables(obj.content)


class PromptTemplateVersionSerializer(serializers.ModelSerializer):
    variables = serializers.SerializerMethodField()

    class Meta:
        model = PromptTemplateVersion
        fields = ["version", "content", "description", "variables", "created_at"]

    def get_variables(self, obj: PromptTemplateVersion) -> list[str]:
        return template_variables(obj.content)


class RenderSerializer(StrictSerializer):
    arguments = serializers.DictField(required=False, default=dict)


class RenderResultSerializer(serializers.Serializer):
    content = serializers.CharField()
