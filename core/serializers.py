"""Serializer bases shared by the apps: unknown fields are an error, not silently dropped."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class _RejectUnknown(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            known = {name for name, f in self.fields.items() if not f.read_only}
            read_only = {name for name, f in self.fields.items() if f.read_only}
            unknown = sorted(set(data) - known - read_only)
            if unknown:
                raise serializers.ValidationError({name: "Unknown field." for name in unknown})
        return super().to_internal_value(data)


class StrictSerializer(_RejectUnknown):
    pass


class StrictModelSerializer(_RejectUnknown, serializers.ModelSerializer):
    pass
