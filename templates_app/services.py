"""Prompt template services: every update bumps the version and keeps the previous text."""

from __future__ import annotations

from typing import Any, Mapping

from django.db import transaction
from django.db.models import Q

from inference.engine.errors import TemplateNotFound
from inference.engine.templates import render_template

from .models import PromptTemplate, PromptTemplateVersion


def template_get(*, id_or_name: str) -> PromptTemplate:
    tpl = PromptTemplate.objects.filter(Q(pk=id_or_name) | Q(name=id_or_name)).first()
    if tpl is None:
        raise TemplateNotFound(f"No prompt template {id_or_name!r}.")
    return tpl


@transaction.atomic
def template_create(*, name: str, content: str, description: str = "") -> PromptTemplate:
    tpl = PromptTemplate.objects.create(name=name, content=content, description=description, version=1)
    PromptTemplateVersion.objects.create(template=tpl, version=1, content=content, description=description)
    return tpl


@transaction.atomic
def template_update(*, template: PromptTemplate, changes: Mapping[str, Any]) -> PromptTemplate:
    # Lock the row so two concurrent updates can't both write version N+1.
    tpl = PromptTemplate.objects.select_for_update().get(pk=template.pk)
    if not any(getattr(tpl, k) != v for k, v in changes.items()):
        return tpl
    for key, value in changes.items():
        setattr(tpl, key, value)
    tpl.version += 1
    tpl.save()
    PromptTemplateVersion.objects.create(template=tpl, version=tpl.version, content=tpl.content, description=tpl.description)
    return tpl


def template_render(*, id_or_name: str, arguments: Mapping[str, Any]) -> str:
    return render_template(template_get(id_or_name=id_or_name).content, arguments)
