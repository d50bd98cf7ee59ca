"""Serializer bases shared by the apps: unknown fields are an error, not silently dropped."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class _RejectUnknown:
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            known = {name for name, f in self.fields.items() if not f.read_only}  # type: ignore[attr-defined]
            read_only = {name for name, f in self.fields.items() if f.read_only}  # type: ignore[attr-defined]
            unknown = sorted(set(data) - known - read_only)
            if unknown:
                raise serializers.ValidationError({name: "Unknown field." for name in unknown})
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictSerializer(_RejectUnknown, serializers.Serializer):
    pass


class StrictModelSerializer(_RejectUnknown, serializers.ModelSerializer):
    pass
