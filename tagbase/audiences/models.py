"""Target audiences: named, static sets of customers, and the record of every change.

Invariants (kept by ``audiences.services``, the only code that writes these tables):
- ``Audience.member_count`` equals the number of its ``Membership`` rows, and
  ``Audience.last_set_at`` is the last time any customer was added; both change in the same
  transaction as the rows (``reconcile`` proves it).
- Every ``Membership`` names the ``Operation`` that set it. Every removal is copied to the
  append-only ``RemovedMembership`` ledger before the row goes, so history and undo survive.
- A ``Membership`` with ``expires_at`` stays a member like any other until a worker's sweep
  after that moment removes it, as an ``expiry`` operation (docs/expiry.md).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from tagbase.customers.models import Customer
from tagbase.lib.names import audience_name_key

# The longest time-to-live a membership may be given: ten years (a longer one is a typo).
MAX_TTL_DAYS = 3650


class Audience(models.Model):
    """A named static set of customers. ``name_key`` makes names unique after trimming, NFC and
    case-folding; ``name`` keeps what the user typed for display."""

    name = models.CharField(max_length=200)
    name_key = models.CharField(max_length=200, unique=True, editable=False)
    description = models.TextField(blank=True, default="")
    member_count = models.BigIntegerField(default=0)
    last_set_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)
    member_ttl_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Default time-to-live of a membership set by an add, in days (empty: none)",
    )

    class Meta:
        ordering = ["name_key"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.name_key = audience_name_key(self.name)
        super().save(*args, **kwargs)


class OperationKind(models.TextChoices):
    UI = "ui", "Web UI"
    API = "api", "API"
    CLI = "cli", "Command line"
    IMPORT = "import", "Import"
    SEGMENT = "segment", "Segment"
    CAMPAIGN = "campaign", "Campaign"
    SET = "set", "Set operation"
    # The worker removing memberships whose time-to-live has passed (docs/expiry.md).
    EXPIRY = "expiry", "Expiry"
    # A customer's personal data erased (docs/privacy.md): removed from every audience. Not
    # undoable: the customer no longer exists.
    ERASURE = "erasure", "Erasure"
    UNDO = "undo", "Undo"


class OperationAction(models.TextChoices):
    ADD = "add", "Add"
    REMOVE = "remove", "Remove"
    # Both at once: make the audience equal to a selection (add the missing, remove the rest).
    REPLACE = "replace", "Replace"


class OperationStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNDONE = "undone", "Undone"


class Operation(models.Model):
    """One change of memberships of one audience: who, when, from where, how many.

    ``requested`` counts the distinct customer ids the operation was given. Of those, ids that
    are no customer (any more) are added to ``not_found``; the rest split into
    ``added + already_member`` (add) or ``removed + not_member`` (remove). ``not_found``,
    ``ambiguous`` and ``invalid`` also carry what resolving the caller's identifiers found
    before the operation (``IdentifierOutcome``), so the operation tells the whole story of a
    request: ``requested = added + already_member + (not_found - outcome.not_found)``.

    A ``replace`` makes the audience equal to the selection it was given: ``added`` and
    ``already_member`` as for an add, and ``removed`` the members outside the selection
    (``not_member`` stays 0). Its undo (also ``replace``) removes what it added and restores
    what it removed.
    """

    audience = models.ForeignKey(
        Audience, null=True, on_delete=models.SET_NULL, related_name="operations"
    )
    audience_name = models.CharField(max_length=200, help_text="Name when the operation ran")
    kind = models.CharField(max_length=16, choices=OperationKind.choices)
    action = models.CharField(max_length=8, choices=OperationAction.choices)
    status = models.CharField(
        max_length=16, choices=OperationStatus.choices, default=OperationStatus.RUNNING
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(
        max_length=150, blank=True, default="", help_text="User name or API token name at the time"
    )
    source_ref = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="What caused it: import:12, segment:3, token:erp…",
    )
    requested = models.BigIntegerField(default=0)
    added = models.BigIntegerField(default=0)
    already_member = models.BigIntegerField(default=0)
    removed = models.BigIntegerField(default=0)
    not_member = models.BigIntegerField(default=0)
    not_found = models.BigIntegerField(default=0)
    ambiguous = models.BigIntegerField(default=0)
    invalid = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    undoes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="undone_by"
    )
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["audience", "-created_at"], name="operation_audience_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.audience_name}"

    @property
    def changed(self) -> int:
        if self.action == OperationAction.REPLACE:
            return self.added + self.removed
        return self.added if self.action == OperationAction.ADD else self.removed

    @property
    def can_undo(self) -> bool:
        return (
            self.status == OperationStatus.SUCCEEDED
            and self.kind not in {OperationKind.UNDO, OperationKind.ERASURE}
            and self.audience_id is not None
        )


class Membership(models.Model):
    """One customer in one audience: when it was set and by which operation, and until when
    (``expires_at``: the worker removes it after that moment; NULL, the usual case: until
    removed)."""

    # Indexes: the primary key serves "members of an audience"; membership_customer_idx serves
    # "audiences of a customer". membership_expiry_idx is partial: it holds only the rows with
    # an expiry, so an add without one writes no entry to it. No other index: each one costs on
    # every insert of millions.
    # On SQLite the table is WITHOUT ROWID (migration 0003): rows live in the key's b-tree.
    # A later migration that makes Django rebuild this table on SQLite must restore that.
    pk = models.CompositePrimaryKey("audience_id", "customer_id")
    audience = models.ForeignKey(
        Audience, on_delete=models.DO_NOTHING, related_name="+", db_index=False
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.DO_NOTHING, related_name="+", db_index=False
    )
    set_at = models.DateTimeField()
    operation = models.ForeignKey(
        Operation,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "audience"], name="membership_customer_idx"),
            models.Index(
                fields=["audience", "expires_at"],
                name="membership_expiry_idx",
                condition=models.Q(expires_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"customer {self.customer_id} in audience {self.audience_id}"


class RemovedMembership(models.Model):
    """Append-only ledger: a membership as it was when an operation removed it."""

    audience = models.ForeignKey(
        Audience, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    set_at = models.DateTimeField()
    set_by = models.ForeignKey(
        Operation,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    removed_at = models.DateTimeField()
    removed_by = models.ForeignKey(
        Operation,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    # The membership's expiry when it was removed: an undo restores it if still in the future.
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["removed_by"], name="removal_operation_idx"),
            models.Index(fields=["customer", "removed_at"], name="removal_customer_idx"),
        ]

    def __str__(self) -> str:
        return f"customer {self.customer_id} left audience {self.audience_id}"


# --- Scheduled exports (docs/exports.md) -------------------------------------------------------


class ExportFrequency(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"


class ExportSchedule(models.Model):
    """A recurring export of one audience's members to a file in ``TAGBASE_EXPORT_DIR``.

    ``export_format`` is an identifier type (``sc_id`` … ``card``) or an ad-platform layout
    (``google``, ``meta``). The schedule runs every day (or every ``weekday``, 0 = Monday) at
    ``at_time`` in ``TIME_ZONE``; ``next_run_at`` is the next such moment, advanced by the
    worker that claims a run (a conditional UPDATE, so one worker wins). Written only by
    ``audiences.exports``; deleting the audience deletes its schedules (files already written
    stay in the folder)."""

    audience = models.ForeignKey(
        Audience, on_delete=models.CASCADE, related_name="export_schedules"
    )
    export_format = models.CharField(max_length=16)
    frequency = models.CharField(max_length=8, choices=ExportFrequency.choices)
    weekday = models.PositiveSmallIntegerField(null=True, blank=True)
    at_time = models.TimeField()
    bom = models.BooleanField(default=False, help_text="Start the file with a UTF-8 BOM")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    next_run_at = models.DateTimeField(db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_file = models.CharField(max_length=500, blank=True, default="")
    last_rows = models.BigIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["audience_id", "id"]

    def __str__(self) -> str:
        return f"export of audience {self.audience_id} as {self.export_format} ({self.frequency})"
