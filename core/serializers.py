"""Serializer bases shared by the apps: unknown fields are an error, not silently dropped, and a
JSON value of the wrong type is an error, not coerced (DRF turns ``5`` into ``"5"`` for a string
field and ``"yes"`` into ``true`` for a boolean one)."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from django.http import QueryDict
from rest_framework import serializers

# DRF's own messages for these fields' invalid input.
NOT_A_STRING = "Not a valid string."
NOT_A_BOOLEAN = "Must be a valid boolean."
NOT_AN_INTEGER = "A valid integer is required."
NOT_A_NUMBER = "A valid number is required."


def _type_problem(field: serializers.Field, value: Any) -> Any:
    """Why a JSON ``value`` has the wrong type for ``field`` (a list's items included), or None.
    ``null`` is left to the field (``allow_null``)."""
    if value is None:
        return None
    if isinstance(field, serializers.CharField):
        return None if isinstance(value, str) else [NOT_A_STRING]
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else [NOT_A_BOOLEAN]
    if isinstance(field, serializers.IntegerField):
        return None if isinstance(value, int) and not isinstance(value, bool) else [NOT_AN_INTEGER]
    if isinstance(field, (serializers.FloatField, serializers.DecimalField)):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else [NOT_A_NUMBER]
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        items = {str(i): problem for i, item in enumerate(value) if (problem := _type_problem(field.child, item))}
        return items or None
    return None


def _keep_whitespace(field: serializers.Field) -> None:
    if isinstance(field, serializers.CharField):
        field.trim_whitespace = False
    elif isinstance(field, serializers.ListField):
        _keep_whitespace(field.child)


class _RejectUnknown(serializers.Serializer):
    _built_fields: ClassVar[dict[str, serializers.Field] | None] = None

    def get_fields(self) -> dict[str, serializers.Field]:
        """String values are taken as sent: not trimmed (a pattern or a length then means what it
        says, and a template's trailing newline is kept).

        Built once per class and copied for each instance, as DRF copies declared fields: a
        ModelSerializer would otherwise rebuild its fields from the model on every request."""
        built = type(self).__dict__.get("_built_fields")
        if built is None:
            built = type(self)._built_fields = super().get_fields()
        fields = copy.deepcopy(built)  # a copy is made anew from the field's arguments: set it after
        for field in fields.values():
            _keep_whitespace(field)
        return fields

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            known = {name for name, f in self.fields.items() if not f.read_only}
            read_only = {name for name, f in self.fields.items() if f.read_only}
            unknown = sorted(set(data) - known - read_only)
            if unknown:
                raise serializers.ValidationError({name: "Unknown field." for name in unknown})
            if not isinstance(data, QueryDict):  # JSON; a form's values are strings by nature
                wrong = {name: problem for name, value in data.items() if name in known
                         and (problem := _type_problem(self.fields[name], value))}
                if wrong:
                    raise serializers.ValidationError(wrong)
        return super().to_internal_value(data)


class StrictSerializer(_RejectUnknown):
    pass


class StrictModelSerializer(_RejectUnknown, serializers.ModelSerializer):
    pass


NOTHING_TO_UPDATE = "Nothing to update: send at least one field."


def update_body(data: Any) -> Any:
    """The body of a PUT/PATCH; an absent or empty one would be a silent ``200`` no-op: refused."""
    if not data:
        raise serializers.ValidationError([NOTHING_TO_UPDATE])
    return data
