"""Prompt templates with a version history: every update keeps the previous text."""

from __future__ import annotations

import secrets

from django.core.validators import RegexValidator
from django.db import models

TEMPLATE_NAME_RE = r"^[A-Za-z0-9._-]{1,100}$"


def new_template_id() -> str:
    # A prefix keeps ids distinguishable from names in /v1/prompt-templates/{id-or-name}.
    return "pt_" + secrets.token_hex(8)


class PromptTemplate(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_template_id, editable=False)
    name = models.CharField(max_length=100, unique=True, validators=[RegexValidator(TEMPLATE_NAME_RE)])
    content = models.TextField()
    description = models.TextField(blank=True, default="")
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PromptTemplateVersion(models.Model):
    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    content = models.TextField()
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "-version"]
        constraints = [models.UniqueConstraint(fields=["template", "version"], name="template_version_unique")]

    def __str__(self) -> str:
        return f"{self.template.name} v{self.version}"
