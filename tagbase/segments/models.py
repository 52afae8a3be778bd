"""User segments: saved rules whose members are computed, and the jobs that include a segment's
members in a target audience.

A ``Segment`` keeps its rule tree (validated by ``segments.rules``; see docs/segments.md) and its
last metrics with their time. A ``SegmentJob`` is one "Include in a target audience": it goes
``queued → running → succeeded | failed`` and runs exactly once — a worker claims it with a lease,
then one transaction evaluates the rule, changes the memberships through the one write path and
marks the job done, so a killed worker leaves nothing half-done and the next one starts again.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from tagbase.audiences.models import Audience, Operation
from tagbase.lib.names import audience_name_key


class Segment(models.Model):
    name = models.CharField(max_length=200)
    name_key = models.CharField(max_length=200, unique=True, editable=False)
    description = models.TextField(blank=True, default="")
    rules = models.JSONField(default=dict)
    uses = models.JSONField(
        default=list, blank=True, help_text="Ids of the segments this rule refers to (cycle check)"
    )
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The last metrics (docs/segments.md#metrics) and when they were computed.
    customers = models.BigIntegerField(null=True, blank=True)
    percent_customers = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    percent_revenue = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    average_receipt = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    total_value = models.DecimalField(max_digits=20, decimal_places=2, null=True, blank=True)
    metrics_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name_key"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.name_key = audience_name_key(self.name)
        super().save(*args, **kwargs)


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class JobAction(models.TextChoices):
    ADD = "add", "Add"
    REMOVE = "remove", "Remove"


class SegmentJob(models.Model):
    """One "Include in a target audience" request (see the module docstring)."""

    segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    segment_name = models.CharField(max_length=200)
    rules = models.JSONField(default=dict, help_text="The rule as it was when the job was made")
    action = models.CharField(max_length=8, choices=JobAction.choices)
    audience = models.ForeignKey(
        Audience, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    audience_name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    expected = models.BigIntegerField(
        null=True, blank=True, help_text="How many would change when the job was made"
    )
    operation = models.ForeignKey(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True, default="")
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["actor_label", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="segment_job_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"Segment job #{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
