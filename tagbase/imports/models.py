"""Audience imports from files: the job that records a whole import's life, and its staging.

An ``ImportJob`` goes ``queued → validating → (previewed) → applying → succeeded |
succeeded_with_rejections``, or ends ``rejected`` (the file as a whole was refused before
anything was applied), ``failed`` (an unexpected error; nothing half-applied) or ``cancelled``.

Stages, each resumable by another worker after this one's lease expires:
1. *parse* — the file is read line by line; each data row is classified as blank, invalid (with
   a reason code) or a candidate, and candidates are staged in ``ImportRow`` in batches. The
   counters and ``checkpoint_line`` are committed with each batch, so a resumed job continues
   after the last committed line and nothing is counted twice.
2. *resolve* — set-based SQL marks duplicates in the file, finds customers (not found,
   ambiguous) and audiences.
3. *apply* — one ``audiences`` Operation per target (an audience and an action) through the
   one write path; each target records its operation in the same transaction, so a resumed job
   never applies twice.
4. *report* — the final counters and the rejected-rows CSV.

A per-row file may name each row's action in a third column (``+`` / ``-``): it then has up to
two targets per audience, an add and a remove, and both pairs of counters are used.

The accounting identity holds for every finished job:
``rows_read = blank + invalid + duplicate_in_file + not_found + ambiguous + already_member +
added + not_member + removed`` (a file that only adds has ``not_member = removed = 0``, and one
that only removes ``already_member = added = 0``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from tagbase.audiences.models import Audience, Operation


class ImportMode(models.TextChoices):
    SINGLE = "single", "One audience for the whole file"
    PER_ROW = "per_row", "Audience given on each row"


class ImportAction(models.TextChoices):
    ADD = "add", "Add"
    REMOVE = "remove", "Remove"


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    VALIDATING = "validating", "Validating"
    PREVIEWED = "previewed", "Previewed (dry run)"
    APPLYING = "applying", "Applying"
    SUCCEEDED = "succeeded", "Succeeded"
    SUCCEEDED_WITH_REJECTIONS = "succeeded_with_rejections", "Succeeded with rejections"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL = {
    ImportStatus.SUCCEEDED,
    ImportStatus.SUCCEEDED_WITH_REJECTIONS,
    ImportStatus.REJECTED,
    ImportStatus.FAILED,
    ImportStatus.CANCELLED,
}
# States in which a worker has something to do.
RUNNABLE = {ImportStatus.QUEUED, ImportStatus.VALIDATING, ImportStatus.APPLYING}


class Stage(models.TextChoices):
    PARSE = "parse", "Reading the file"
    RESOLVE = "resolve", "Finding customers"
    APPLY = "apply", "Changing audiences"
    REPORT = "report", "Writing the report"
    DONE = "done", "Done"


class ImportJob(models.Model):
    """One uploaded file and everything that happened to it (see the module docstring)."""

    mode = models.CharField(max_length=8, choices=ImportMode.choices)
    action = models.CharField(
        max_length=8,
        choices=ImportAction.choices,
        default=ImportAction.ADD,
        help_text="What every row does, except per-row rows that name their own (+ / -)",
    )
    id_type = models.CharField(max_length=16)
    audience = models.ForeignKey(
        Audience,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Mode single: the chosen audience (None while a new one is to be created)",
    )
    audience_name = models.CharField(
        max_length=200, blank=True, default="", help_text="Mode single: the target's name"
    )
    dry_run = models.BooleanField(default=False, help_text="Stop at 'previewed' before applying")
    status = models.CharField(
        max_length=32, choices=ImportStatus.choices, default=ImportStatus.QUEUED, db_index=True
    )
    stage = models.CharField(max_length=8, choices=Stage.choices, default=Stage.PARSE)
    # The file
    file_name = models.CharField(max_length=255, help_text="As uploaded, for display only")
    stored_name = models.CharField(max_length=64, help_text="Generated name under the data dir")
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    encoding_requested = models.CharField(max_length=16, default="auto")
    delimiter_requested = models.CharField(max_length=8, default="auto")
    encoding = models.CharField(max_length=32, blank=True, default="", help_text="As detected")
    delimiter = models.CharField(max_length=8, blank=True, default="", help_text="As detected")
    has_header = models.BooleanField(default=False)
    # Progress and resumption
    checkpoint_line = models.BigIntegerField(default=0, help_text="Last line whose rows are staged")
    bytes_done = models.BigIntegerField(default=0)
    # Counters (see the accounting identity)
    rows_read = models.BigIntegerField(default=0, help_text="Data rows read (not the header)")
    blank = models.BigIntegerField(default=0, help_text="Empty rows, skipped")
    invalid = models.BigIntegerField(default=0, help_text="Rows refused with a reason code")
    invalid_by_reason = models.JSONField(default=dict, blank=True)
    duplicate_in_file = models.BigIntegerField(default=0, help_text="Repeats of an earlier row")
    not_found = models.BigIntegerField(default=0, help_text="Identifiers matching no customer")
    ambiguous = models.BigIntegerField(default=0, help_text="Identifiers matching several")
    already_member = models.BigIntegerField(default=0, help_text="Add: were members already")
    added = models.BigIntegerField(default=0, help_text="Add: became members")
    not_member = models.BigIntegerField(default=0, help_text="Remove: were not members")
    removed = models.BigIntegerField(default=0, help_text="Remove: stopped being members")
    audiences_created = models.JSONField(default=list, blank=True)
    # Outcome
    error_code = models.CharField(max_length=40, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    error_line = models.BigIntegerField(null=True, blank=True)
    error_offset = models.BigIntegerField(null=True, blank=True)
    rejects_name = models.CharField(max_length=64, blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    undone_at = models.DateTimeField(null=True, blank=True)
    # Lease: a worker owns the job until lease_expires_at; it renews with each heartbeat.
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Who and when
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True, default="")
    source = models.CharField(max_length=8, default="ui", help_text="ui, api or cli")
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    request_fingerprint = models.CharField(
        max_length=64, blank=True, default="", help_text="SHA-256 of the file and the options"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    files_purged_at = models.DateTimeField(null=True, blank=True)
    timings = models.JSONField(
        default=dict, blank=True, help_text="Seconds spent per stage (parse, resolve, apply…)"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["actor_label", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="import_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"Import #{self.pk} ({self.file_name})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_successful(self) -> bool:
        return self.status in {
            ImportStatus.SUCCEEDED,
            ImportStatus.SUCCEEDED_WITH_REJECTIONS,
        }

    @property
    def rejected_rows(self) -> int:
        return self.invalid + self.duplicate_in_file + self.not_found + self.ambiguous

    @property
    def progress_percent(self) -> int:
        if self.is_terminal or self.status == ImportStatus.PREVIEWED:
            return 100
        if not self.size_bytes:
            return 0
        parse_share = 70 if self.stage == Stage.PARSE else 100
        done = min(self.bytes_done, self.size_bytes) / self.size_bytes
        return int(done * parse_share) if self.stage == Stage.PARSE else 85


class ImportTarget(models.Model):
    """One change an import makes to one audience: the chosen audience (mode single) or each
    distinct name in the file (mode per_row), with the action its rows ask for — a per-row file
    that adds some customers to an audience and removes others has two targets for it.
    ``operation`` is set in the same transaction as the change, so a resumed job knows this
    target is done. ``changed`` / ``unchanged`` are the target's split of the report (added /
    already members, or removed / not members): a preview's figures, then the applied ones."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="targets")
    key = models.CharField(max_length=200, help_text="Name key; '' in mode single")
    action = models.CharField(max_length=8, choices=ImportAction.choices, default=ImportAction.ADD)
    name = models.CharField(max_length=200, help_text="First spelling seen in the file")
    audience = models.ForeignKey(
        Audience, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_audience = models.BooleanField(default=False)
    operation = models.ForeignKey(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed = models.BigIntegerField(default=0, help_text="Added (add) or removed (remove)")
    unchanged = models.BigIntegerField(
        default=0, help_text="Already members (add) or not members (remove)"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["job", "key", "action"], name="import_target_key_action"
            )
        ]

    def __str__(self) -> str:
        return f"{self.job_id}:{self.name}:{self.action}"

    @property
    def sign(self) -> str:
        return "+" if self.action == ImportAction.ADD else "-"


class RowStatus(models.TextChoices):
    CANDIDATE = "ok", "Candidate"
    INVALID = "invalid", "Invalid"
    DUPLICATE = "dup", "Duplicate in file"
    NOT_FOUND = "nf", "Not found"
    AMBIGUOUS = "amb", "Ambiguous"


class ImportRow(models.Model):
    """A staged row of a running import (deleted when the job ends). Rows refused while
    reading are staged too, so the rejected-rows report lists every line in file order."""

    pk = models.CompositePrimaryKey("job_id", "line")
    # The primary key (job, line) is the only index; on SQLite the table is WITHOUT ROWID
    # (migration 0003), so staged rows are appended to one b-tree in file order.
    job = models.ForeignKey(
        ImportJob, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False
    )
    line = models.BigIntegerField()
    status = models.CharField(max_length=8, default=RowStatus.CANDIDATE)
    reason = models.CharField(max_length=40, blank=True, default="")
    value = models.CharField(max_length=400, null=True, blank=True, help_text="Normalised")
    raw = models.TextField(null=True, blank=True, help_text="The record as in the file")
    target_key = models.CharField(max_length=200, default="")
    customer_id = models.BigIntegerField(null=True, blank=True)
    # Nullable without a default, so that adding it keeps the SQLite table WITHOUT ROWID (an
    # ALTER TABLE ADD COLUMN, not a rebuild) and single-mode rows stage nothing more.
    sign = models.CharField(
        max_length=1,
        null=True,
        blank=True,
        help_text="Per-row: + or - as the row said; NULL: the job's action",
    )

    def __str__(self) -> str:
        return f"{self.job_id}:{self.line}"
