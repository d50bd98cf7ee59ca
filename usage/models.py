"""Usage records (one per model call) and quotas (per user or per group).

Records name their session, API key and agent by id, not by foreign key: the figures must
outlive a deleted session, a revoked key or an agent that is gone.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q


class Kind(models.TextChoices):
    CHAT = "chat", "Run round"
    SUMMARY = "summary", "Summary"
    MEMORY = "memory", "Memory extraction"
    TITLE = "title", "Title"


class Outcome(models.TextChoices):
    OK = "ok", "Answered"
    ERROR = "error", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class UsageRecord(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_records")
    api_key_id = models.PositiveBigIntegerField(null=True, blank=True, help_text="Empty for a browser session.")
    agent = models.CharField(max_length=100, blank=True, default="")
    model_id = models.CharField(max_length=100)
    session_id = models.CharField(max_length=40, blank=True, default="")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CHAT)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK)
    at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "usage record"
        ordering = ["-at"]
        # "this user's tokens today" is read before every run that has a token quota
        indexes = [models.Index(fields=["user", "at"], name="usage_user_at")]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=Kind.values), name="usage_valid_kind"),
            models.CheckConstraint(condition=Q(outcome__in=Outcome.values), name="usage_valid_outcome"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind} {self.model_id} {self.total_tokens}"


class Scope(models.TextChoices):
    USER = "user", "User"
    GROUP = "group", "Group"


class Quota(models.Model):
    """A user's or a group's limits; empty = no limit. A user's own quota wins over groups'."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="quota"
    )
    group = models.OneToOneField(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="quota")
    tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True, help_text="Empty = no limit (UTC days).")
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="Empty = no limit.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(group__isnull=True)) | (Q(user__isnull=True) & Q(group__isnull=False)),
                name="quota_user_xor_group",
            ),
        ]

    @property
    def scope(self) -> str:
        return Scope.USER if self.user_id else Scope.GROUP

    @property
    def name(self) -> str:
        if self.user is not None:
            return str(self.user.get_username())
        return self.group.name if self.group is not None else ""

    def __str__(self) -> str:
        return f"{self.scope} {self.name}"


class RequestWindow(models.Model):
    """Requests a user started in one minute: the rate counter when no Redis is configured."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    minute = models.BigIntegerField(help_text="Unix time // 60.")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "minute"], name="request_window_unique")]
