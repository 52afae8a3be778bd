"""Customers of a loyalty program and what is known about them.

The identifier columns that imports and the API match on (``sc_id``, ``external_id``,
``phone``, ``email``, ``Card.number``) hold values already normalised by
``tagbase.lib.identifiers`` and are indexed. The raw values as received are kept beside them
(``phone_raw``, ``email_raw``) so a profile can show what the partner sent and why it was
judged invalid.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Gender(models.TextChoices):
    MALE = "m", "Male"
    FEMALE = "f", "Female"
    UNKNOWN = "", "Unknown"


class Customer(models.Model):
    """One loyalty-program member. ``sc_id`` is Tagbase's own id, shown in every list."""

    sc_id = models.BigAutoField(primary_key=True, verbose_name="ID")
    # NULL, not "": many customers have no partner id, and unique must not count "" as a value.
    external_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    last_name = models.CharField(max_length=100, blank=True, default="")
    first_name = models.CharField(max_length=100, blank=True, default="")
    middle_name = models.CharField(max_length=100, blank=True, default="")
    gender = models.CharField(max_length=1, choices=Gender.choices, blank=True, default="")
    birth_date = models.DateField(null=True, blank=True)
    country = models.CharField(max_length=100, blank=True, default="")
    city = models.CharField(max_length=100, blank=True, default="")
    registered_at = models.DateTimeField(default=timezone.now, db_index=True)
    phone_raw = models.CharField(max_length=64, blank=True, default="")
    phone = models.CharField(
        max_length=20,
        null=True,
        blank=True,
        db_index=True,
        help_text="E.164, set only when phone_raw is a valid number",
    )
    email_raw = models.CharField(max_length=320, blank=True, default="")
    email = models.CharField(
        max_length=320,
        null=True,
        blank=True,
        db_index=True,
        help_text="Normalised, set only when email_raw is valid",
    )
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sc_id"]
        indexes = [models.Index(fields=["last_name", "first_name"], name="customer_name_idx")]

    def __str__(self) -> str:
        return f"{self.sc_id} {self.full_name}".strip()

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.last_name, self.first_name, self.middle_name) if p)

    @property
    def phone_valid(self) -> bool:
        return bool(self.phone)

    @property
    def email_valid(self) -> bool:
        return bool(self.email)

    @property
    def age(self) -> int | None:
        if not self.birth_date:
            return None
        today = timezone.localdate()
        b = self.birth_date
        return today.year - b.year - ((today.month, today.day) < (b.month, b.day))


class CardStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    BLOCKED = "blocked", "Blocked"
    EXPIRED = "expired", "Expired"


class Card(models.Model):
    """A loyalty card. ``number`` is normalised (digits and capital letters, no spaces)."""

    number = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="cards")
    status = models.CharField(max_length=16, choices=CardStatus.choices, default=CardStatus.ACTIVE)
    issued_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.number


class Receipt(models.Model):
    """A purchase. ``(customer, number)`` is unique so loading the same file twice is harmless."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="receipts")
    number = models.CharField(max_length=64)
    date = models.DateTimeField()
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    items = models.PositiveIntegerField(default=1)
    store = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "number"], name="receipt_customer_number")
        ]
        indexes = [models.Index(fields=["customer", "date"], name="receipt_customer_date_idx")]

    def __str__(self) -> str:
        return f"Receipt {self.number}"


class Event(models.Model):
    """Something a customer did that a partner system reported (``app_login``, ``visit``…)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=100)
    occurred_at = models.DateTimeField(default=timezone.now)
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "name", "occurred_at"], name="event_customer_idx")
        ]

    def __str__(self) -> str:
        return f"{self.name} at {self.occurred_at:%Y-%m-%d %H:%M}"


class CustomerStats(models.Model):
    """Receipt metrics per customer, maintained set-based whenever receipts are loaded
    (``customers.services.refresh_customer_stats``), so that lists and segments never scan
    receipts. A customer without receipts has no row."""

    customer = models.OneToOneField(
        Customer, primary_key=True, on_delete=models.CASCADE, related_name="stats"
    )
    receipt_count = models.PositiveIntegerField(default=0)
    total_amount = models.DecimalField(max_digits=16, decimal_places=2, default=0)
    average_amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    average_items = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    first_receipt_at = models.DateTimeField(null=True, blank=True)
    last_receipt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["total_amount"], name="stats_total_idx"),
            models.Index(fields=["last_receipt_at"], name="stats_last_idx"),
        ]

    def __str__(self) -> str:
        return f"Stats of customer {self.customer_id}"


class Erasure(models.Model):
    """The record that a customer's personal data was erased (docs/privacy.md): which ``sc_id``,
    when, by whom, and what was removed, as counts per app. It holds no personal data by design:
    the customer's row is gone, and ``sc_id`` is all that still links the history (operations,
    the removal ledger) to them. An ``sc_id`` is never given to another customer (the id is an
    auto-increment that is not reused), so a history row naming it means this erased customer.

    Written only by ``customers.services.erase_customer``; never changed or deleted."""

    sc_id = models.BigIntegerField(unique=True)
    erased_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(
        max_length=150, blank=True, default="", help_text="User name or API token name at the time"
    )
    counts = models.JSONField(
        default=dict, blank=True, help_text="What was removed or masked, per app: numbers only"
    )
    idempotency_key = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-erased_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["actor_label", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="erasure_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"Customer {self.sc_id} erased"
