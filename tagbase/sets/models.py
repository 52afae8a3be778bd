"""Set operations: the jobs that put the result of an expression over audiences and saved
segments (union, intersection, difference, and e.g. (A union B) minus C) into a target
audience.

A ``SetJob`` is one "Combine audiences" request: it goes ``queued → running → succeeded |
failed`` and runs exactly once — a worker claims it with a lease, then one transaction
evaluates the expression, changes the target's memberships through the one write path as ONE
operation of kind ``set`` (action ``add``, or ``replace`` to make the audience equal to the
result) and marks the job done, so a killed worker leaves nothing half-done and the next one
starts again (``pipeline``). The job keeps the expression with its operands' names and, for
segments, their rules as they were when it was made.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from tagbase.audiences.models import Audience, Operation


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Mode(models.TextChoices):
    ADD = "add", "Add the result"
    REPLACE = "replace", "Replace with the result"


class SetJob(models.Model):
    """One set operation into one audience (see the module docstring)."""

    expression = models.JSONField(help_text="The expression as sent (operand ids)")
    sources = models.JSONField(
        default=list, help_text="Each operand's kind, id, name and (segments) rule, by position"
    )
    summary = models.CharField(max_length=1000, help_text="The expression in words")
    mode = models.CharField(max_length=8, choices=Mode.choices)
    audience = models.ForeignKey(
        Audience, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    audience_name = models.CharField(max_length=200)
    created_audience = models.BooleanField(
        default=False, help_text="The target audience was created by this request"
    )
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    result_count = models.BigIntegerField(
        null=True, blank=True, help_text="Customers in the result when the job was made"
    )
    expected_added = models.BigIntegerField(null=True, blank=True)
    expected_removed = models.BigIntegerField(null=True, blank=True)
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
                name="set_job_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"Set job #{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
