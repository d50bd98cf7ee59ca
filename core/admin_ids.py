"""Field labels in the console: ids as the API writes them (``model_id``, ``tool_ids``), and
other labels Django would get wrong ("Api base").

Django labels a field from its verbose name and capitalises it ("Model id", "Tool ids"), in
list headers, filters and forms; an id reads better as the name people type in ``/v1``
bodies. Its label is ``<code>name</code>``, which Django's capfirst leaves as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString


def written(name: str) -> SafeString:
    """The label of an id field: its name as written."""
    return format_html("<code>{}</code>", name)


@cache  # one function per field and label: the admin matches read-only fields by identity
def labelled(name: str, label: str) -> Callable[[Any], Any]:
    """A list column or read-only field showing the field ``name`` under ``label``."""

    def show(obj: Any) -> Any:
        return getattr(obj, name)

    show.__name__ = name  # the column's CSS class, column-<name>
    return admin.display(description=label, ordering=name)(show)


class _Titled(admin.FieldListFilter):
    """A sidebar filter titled with the field's console label ("By model_id")."""

    def __init__(self, field: Any, request: HttpRequest, params: Any, model: Any, model_admin: Any, field_path: str) -> None:
        super().__init__(field, request, params, model, model_admin, field_path)
        self.title = model_admin.label_of(field_path)


class LabelledValuesFilter(_Titled, admin.AllValuesFieldListFilter):
    pass


class LabelledChoicesFilter(_Titled, admin.ChoicesFieldListFilter):
    pass


class LabelledFields(admin.ModelAdmin):
    """Shows the fields in ``ids_as_written`` under their names as written and those in
    ``labels`` under the label given: in the list, its filters, the form, and the fields of a
    page the user may only view."""

    ids_as_written: tuple[str, ...] = ()
    labels: dict[str, str] = {}

    def label_of(self, name: str) -> str | None:
        return written(name) if name in self.ids_as_written else self.labels.get(name)

    def _column(self, name: Any) -> Any:
        label = self.label_of(name) if isinstance(name, str) else None
        return labelled(name, label) if label else name

    def get_list_display(self, request: HttpRequest) -> Any:
        return [self._column(f) for f in super().get_list_display(request)]

    def get_list_filter(self, request: HttpRequest) -> Any:
        return [self._filter(f) for f in super().get_list_filter(request)]

    def _filter(self, name: Any) -> Any:
        if not (isinstance(name, str) and self.label_of(name)):
            return name
        return name, LabelledChoicesFilter if self.model._meta.get_field(name).choices else LabelledValuesFilter

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> type[ModelForm]:
        form = super().get_form(request, obj, change, **kwargs)
        for name, field in form.base_fields.items():  # a new form class per call: its fields are its own
            field.label = self.label_of(name) or field.label
        return form

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets  # editable: the form's labels above
        return [(title, {**opts, "fields": [self._column(f) for f in opts["fields"]]}) for title, opts in fieldsets]
