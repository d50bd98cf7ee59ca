"""Prompt template services: every update bumps the version and keeps the previous text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from core.errors import Conflict
from inference.engine import TemplateNotFound, render_template

from .models import PromptTemplate, PromptTemplateVersion

NAME_TAKEN = "A prompt template named {name!r} already exists."


def template_list() -> QuerySet[PromptTemplate]:
    return PromptTemplate.objects.order_by("name")


def template_find(*, id_or_name: str) -> PromptTemplate | None:
    return PromptTemplate.objects.filter(Q(pk=id_or_name) | Q(name=id_or_name)).first()


def template_get(*, id_or_name: str) -> PromptTemplate:
    tpl = template_find(id_or_name=id_or_name)
    if tpl is None:
        raise TemplateNotFound(f"No prompt template {id_or_name!r}.")
    return tpl


def template_create(*, name: str, content: str, description: str = "") -> PromptTemplate:
    try:
        with transaction.atomic():
            tpl = PromptTemplate.objects.create(name=name, content=content, description=description, version=1)
            PromptTemplateVersion.objects.create(template=tpl, version=1, content=content, description=description)
    except IntegrityError:
        raise Conflict(NAME_TAKEN.format(name=name)) from None
    return tpl


def template_update(*, template: PromptTemplate, changes: Mapping[str, Any]) -> PromptTemplate:
    try:
        with transaction.atomic():
            # Lock the row so two concurrent updates can't both write version N+1.
            tpl = PromptTemplate.objects.select_for_update().get(pk=template.pk)
            if not any(getattr(tpl, k) != v for k, v in changes.items()):
                return tpl
            for key, value in changes.items():
                setattr(tpl, key, value)
            tpl.version += 1
            tpl.save()
            PromptTemplateVersion.objects.create(
                template=tpl, version=tpl.version, content=tpl.content, description=tpl.description
            )
    except IntegrityError:
        raise Conflict(NAME_TAKEN.format(name=changes.get("name"))) from None
    return tpl


def template_delete(*, template: PromptTemplate) -> None:
    template.delete()


def template_render(*, id_or_name: str, arguments: Mapping[str, Any]) -> str:
    return render_template(template_get(id_or_name=id_or_name).content, arguments)
