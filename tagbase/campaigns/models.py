"""Campaigns: a trigger plus a graph of actions, and everything the engine records while it runs
one (see docs/campaigns.md).

- ``Campaign`` keeps the graph (nodes with kind, parameters and position; edges from a node's
  port to a node), validated by ``campaigns.graph``. ``trigger_kind`` repeats the kind of the
  graph's trigger node so that "is any active campaign listening for receipts?" is one indexed
  query. Every save bumps ``version`` and stores a ``CampaignVersion`` snapshot.
- ``Entry``: a customer entered a campaign (the re-entry interval is checked against these).
- ``Batch``: the customers who entered together (one trigger firing).
- ``Token``: a customer waiting to run one node of a batch, from ``due_at`` on. The engine runs a
  step — consume a node's due tokens, act, write the tokens of the next nodes, record a
  ``StepRun`` — in one transaction, so a crash leaves the tokens where they were and no step
  runs twice for a customer.
- ``Passage``: one customer through one step run, and the port they left by (the profile shows
  these as "the steps they passed").
- ``OutboxMessage``: e-mails, SMS and push messages a step produced, written in the step's
  transaction and delivered after it commits.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from tagbase.customers.models import Customer
from tagbase.lib.names import audience_name_key


class CampaignStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Not active"
    SUSPENDED = "suspended", "Suspended"


class Campaign(models.Model):
    """A trigger plus a graph of actions. Only an ``active`` campaign lets customers in or moves
    them on; ``suspended`` keeps waiting customers where they are until it is active again;
    ``inactive`` never runs."""

    name = models.CharField(max_length=200)
    name_key = models.CharField(max_length=200, unique=True, editable=False)
    description = models.TextField(blank=True, default="")
    status = models.CharField(
        max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.INACTIVE
    )
    reentry_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Days before a customer may enter again; 0: any time; empty: never again",
    )
    trigger_kind = models.CharField(max_length=40, editable=False)
    graph = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1)
    # Scheduled triggers: the last moment the trigger fired (claimed with a conditional UPDATE
    # so that exactly one worker fires it).
    fired_at = models.DateTimeField(null=True, blank=True)
    # Set when a run task is queued for the campaign, cleared when it starts: at most one
    # queued run per campaign however often the tick finds due work.
    run_queued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name_key"]
        indexes = [models.Index(fields=["trigger_kind", "status"], name="campaign_trigger_idx")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.name_key = audience_name_key(self.name)
        super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.status == CampaignStatus.ACTIVE


class CampaignVersion(models.Model):
    """The campaign as it was saved, once per save (append-only)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    reentry_days = models.PositiveIntegerField(null=True, blank=True)
    graph = models.JSONField(default=dict)
    saved_at = models.DateTimeField(default=timezone.now)
    saved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["campaign", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "version"], name="campaign_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class Batch(models.Model):
    """Customers who entered a campaign together: one firing of its trigger."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="batches")
    version = models.PositiveIntegerField()
    trigger_kind = models.CharField(max_length=40)
    context = models.JSONField(default=dict, blank=True, help_text="What fired the trigger")
    requested = models.BigIntegerField(default=0, help_text="Customers the trigger offered")
    entered = models.BigIntegerField(default=0, help_text="Customers let in (re-entry allowed)")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Batch #{self.pk} of campaign {self.campaign_id}"


class Entry(models.Model):
    """One customer entering one campaign."""

    # db_index=False: the composite index below starts with the campaign. No database
    # constraints on the high-volume engine tables (Entry, Token, Passage): PostgreSQL checks
    # each row's foreign keys one by one at commit, which cost as much as the inserts themselves
    # (100k customers through three steps: ~1.15M checks, about half the run). The engine only
    # writes ids it read from these very tables or from customers in the same transaction, and
    # deletes cascade through Django (on_delete) as before.
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="entries",
        db_index=False,
        db_constraint=False,
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    version = models.PositiveIntegerField()
    entered_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["campaign", "customer", "entered_at"], name="entry_customer_idx")
        ]

    def __str__(self) -> str:
        return f"customer {self.customer_id} entered campaign {self.campaign_id}"


class Token(models.Model):
    """A customer of a batch waiting to run ``node`` from ``due_at`` on."""

    # No database constraints: see Entry.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    node = models.CharField(max_length=64)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    due_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["campaign", "node", "batch", "customer"], name="token_step_idx"),
            models.Index(fields=["due_at"], name="token_due_idx"),
        ]

    def __str__(self) -> str:
        return f"customer {self.customer_id} at {self.node} of campaign {self.campaign_id}"


class StepRun(models.Model):
    """One execution of one node for (part of) one batch, with its counts."""

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="step_runs", db_index=False
    )
    batch = models.ForeignKey(Batch, null=True, on_delete=models.CASCADE, related_name="+")
    node = models.CharField(max_length=64)
    kind = models.CharField(max_length=40)
    count_in = models.BigIntegerField(default=0)
    counts_out = models.JSONField(default=dict, blank=True, help_text="Customers per output port")
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["campaign", "node"], name="steprun_node_idx")]

    def __str__(self) -> str:
        return f"{self.node} of campaign {self.campaign_id}: {self.count_in} in"

    @property
    def count_out(self) -> int:
        return sum(int(n) for n in self.counts_out.values())


class Passage(models.Model):
    """A customer passed a step: the step run (campaign, node, batch, time) and the output port
    they left by; ``port`` is empty when the step stopped them (a limit, an error, a node that no
    longer exists). Read by the profile's *Campaigns* section."""

    # No database constraints: see Entry.
    step = models.ForeignKey(
        StepRun, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    port = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["customer", "step"], name="passage_customer_idx")]

    def __str__(self) -> str:
        return f"customer {self.customer_id} passed step run {self.step_id} by {self.port!r}"


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class OutboxMessage(models.Model):
    """A message a campaign step produced. Written in the step's transaction (so it exists iff
    the step happened) and delivered after commit: ``pending → sending → sent | failed``. A
    message found ``sending`` (its sender died) is not sent again: at most once."""

    campaign = models.ForeignKey(
        Campaign, null=True, on_delete=models.SET_NULL, related_name="messages"
    )
    node = models.CharField(max_length=64, blank=True, default="")
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    to = models.CharField(max_length=320)
    subject = models.CharField(max_length=300, blank=True, default="")
    body = models.TextField()
    status = models.CharField(
        max_length=8, choices=OutboxStatus.choices, default=OutboxStatus.PENDING, db_index=True
    )
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.channel} to customer {self.customer_id}"


class SegmentWatch(models.Model):
    """For the *entered a segment* trigger: who was in the segment at the campaign's last check,
    so the next check lets in only those who are new."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "customer"], name="segment_watch_unique")
        ]

    def __str__(self) -> str:
        return f"customer {self.customer_id} seen in the segment of campaign {self.campaign_id}"
