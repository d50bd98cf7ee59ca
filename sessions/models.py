"""Conversations owned by users, with every message ever added, a rolling summary and memory."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q


def new_session_id() -> str:
    return "s_" + secrets.token_hex(12)


class Role(models.TextChoices):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class Session(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_session_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    title = models.CharField(max_length=200, blank=True, default="")
    model_id = models.CharField(max_length=100, blank=True, default="")
    summary = models.TextField(blank=True, default="")
    # Messages with seq < summarized_upto are folded into `summary` and not sent to the model.
    summarized_upto = models.PositiveIntegerField(default=0)
    memory = models.JSONField(default=list, blank=True)
    # Calibrates token estimates from what the model server reported for this session.
    tokens_per_char = models.FloatField(null=True, blank=True)
    message_count = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    # The run lock lives in the database so that several worker processes agree on it. It is a
    # lease: the run's worker renews it while the run goes, so a dead worker's lock expires.
    run_token = models.CharField(max_length=40, blank=True, default="")
    run_started_at = models.DateTimeField(null=True, blank=True)
    run_lease_until = models.DateTimeField(null=True, blank=True)
    # Set by a cancel; the run's heartbeat sees it even when the cancel signal did not reach its worker.
    run_cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="session_owner_recent")]

    def __str__(self) -> str:
        return self.title or self.id


class SessionMessage(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.JSONField(default=str, blank=True)  # a string, or a list of content items for tool results
    thinking = models.TextField(blank=True, default="")
    tool_calls = models.JSONField(default=list, blank=True)
    tool_call_id = models.CharField(max_length=100, blank=True, default="")
    tool_id = models.CharField(max_length=200, blank=True, default="")
    tool_name = models.CharField(max_length=64, blank=True, default="")
    is_error = models.BooleanField(default=False)
    duration_ms = models.FloatField(null=True, blank=True)
    prompt_template = models.CharField(max_length=100, blank=True, null=True)
    arguments = models.JSONField(null=True, blank=True)
    # Images/audio live in files under the data dir; rows only reference them.
    attachments = models.JSONField(default=list, blank=True)
    incomplete = models.BooleanField(default=False)
    error = models.JSONField(null=True, blank=True)
    # Replaced by a regenerate or an edit: kept in the stored history, never sent to the model again.
    superseded = models.BooleanField(default=False)
    # On the last assistant message of a run: that run's tokens and wall time (shown under the answer).
    usage = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["session", "seq"], name="session_message_seq_unique"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="session_message_valid_role"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq} {self.role}"
