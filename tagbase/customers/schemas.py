"""Request and response shapes of the customers and receipts API (docs/api.md).

Bulk rows are checked in two tiers, as files are: a value of the wrong JSON type (an object
where a name goes) refuses the whole request with a 422 naming ``customers.<i>.<field>``;
a value of the right type but the wrong form (a bad date, a taken card) skips only that row
and is listed in the report's ``errors`` by its position in the list (``line``, from 1).
Only the fields a row carries are written; ``null`` or ``""`` clears a field.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ninja import Field, Schema
from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr

from tagbase.customers.models import Customer
from tagbase.customers.rows import ATTR_PREFIX

MAX_BULK_ROWS = 10_000

Text = StrictStr | None
# Identifiers and numbers may come as JSON numbers; they are read as their decimal text.
Code = StrictStr | StrictInt | None
Number = StrictStr | StrictInt | StrictFloat


class Input(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error, not a silent no-op. Plain
    pydantic, not ninja's Schema: its ORM-reading wrapper costs ~7x on 10,000-row bodies."""

    model_config = ConfigDict(extra="forbid")


# --- Customers --------------------------------------------------------------------------------


class CustomerRowIn(Input):
    external_id: Code = Field(None, description="The partner's id; a known one updates")
    last_name: Text = None
    first_name: Text = None
    middle_name: Text = None
    gender: Text = Field(None, description="m, f (also male, female, м, ж) or empty")
    birth_date: Text = Field(None, description="YYYY-MM-DD")
    country: Text = None
    city: Text = None
    registered_at: Text = Field(None, description="ISO 8601 date or date-time")
    phone: Code = Field(None, description="Any local habit; stored in E.164")
    email: Text = None
    card: Code = Field(None, description="Loyalty card number to attach")
    attributes: dict[str, Any] | None = Field(
        None, description="Custom attributes merged into the customer's; null removes a key"
    )

    def as_row(self) -> dict[str, Any]:
        """The row for ``customers.services.upsert_customers``: only the fields sent, with
        attributes as ``attr.<name>`` columns."""
        row = self.model_dump(exclude_unset=True, exclude={"attributes"})
        for name, value in (self.attributes or {}).items():
            row[ATTR_PREFIX + name] = value
        return row


class CustomersBulkIn(Input):
    customers: list[CustomerRowIn] = Field(min_length=1, max_length=MAX_BULK_ROWS)


class CardOut(Schema):
    number: str
    status: str
    issued_at: datetime


class StatsOut(Schema):
    receipt_count: int
    total_amount: Decimal
    average_amount: Decimal
    average_items: Decimal
    first_receipt_at: datetime | None
    last_receipt_at: datetime | None


class CustomerOut(Schema):
    sc_id: int
    external_id: str | None
    last_name: str
    first_name: str
    middle_name: str
    gender: str = Field(description="m, f, or empty when unknown")
    birth_date: date | None
    country: str
    city: str
    registered_at: datetime
    phone: str | None = Field(description="E.164; null when phone_raw is not a valid number")
    phone_raw: str
    email: str | None = Field(description="Normalised; null when email_raw is not valid")
    email_raw: str
    attributes: dict[str, Any]
    cards: list[CardOut]
    stats: StatsOut | None = Field(description="Receipt metrics; null without receipts")
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_stats(obj: Customer) -> Any:
        # A customer without receipts has no stats row: the reverse accessor raises.
        return getattr(obj, "stats", None)


# --- Receipts ---------------------------------------------------------------------------------


class ReceiptRowIn(Input):
    sc_id: Code = Field(None, description="The customer, by Tagbase id…")
    external_id: Code = Field(None, description="…or by the partner's id (exactly one of both)")
    number: StrictStr | StrictInt = Field(description="Unique per customer; a known one updates")
    date: StrictStr = Field(description="ISO 8601 date or date-time")
    amount: Number = Field(description="Non-negative, at most 2 decimals")
    items: Code = Field(None, description="Number of items, default 1")
    store: Text = None

    def as_row(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class ReceiptsBulkIn(Input):
    receipts: list[ReceiptRowIn] = Field(min_length=1, max_length=MAX_BULK_ROWS)


# --- Events ---------------------------------------------------------------------------------


class EventRowIn(Input):
    sc_id: Code = Field(None, description="The customer, by Tagbase id…")
    external_id: Code = Field(None, description="…or by the partner's id (exactly one of both)")
    name: StrictStr = Field(description="The event's name, 1-100 characters (app_login, visit…)")
    occurred_at: Text = Field(
        None, description="ISO 8601 date or date-time; default: when it is recorded"
    )
    payload: dict[str, Any] | None = Field(
        None, description="Any JSON object; event_occurred triggers match its keys"
    )

    def as_row(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class EventsIn(Input):
    events: list[EventRowIn] = Field(min_length=1, max_length=MAX_BULK_ROWS)


# --- Reports ----------------------------------------------------------------------------------


class RowErrorOut(Schema):
    line: int = Field(description="The row's position in the list, from 1")
    field: str
    code: str
    message: str


class LoadReportOut(Schema):
    rows: int
    created: int
    updated: int
    failed: int
    errors: list[RowErrorOut] = Field(description="The first 1,000 problems")


# --- Erasure ----------------------------------------------------------------------------------


class ErasureOut(Schema):
    """The erasure record of a customer (docs/privacy.md): no personal data, only the id, when,
    who and what was removed, as counts per app."""

    sc_id: int
    erased_at: datetime
    erased_by: str = Field(description="The user or token (token:<name>) that erased it")
    already_erased: bool = Field(
        description="True when the customer had been erased before this request (nothing was "
        "done now); a repeat with the same Idempotency-Key answers as the first time"
    )
    counts: dict[str, dict[str, int]] = Field(
        description="Per app (audiences, imports, campaigns, customers): rows removed or masked"
    )

    @staticmethod
    def of(erasure: Any, already_erased: bool) -> dict[str, Any]:
        return {
            "sc_id": erasure.sc_id,
            "erased_at": erasure.erased_at,
            "erased_by": erasure.actor_label,
            "already_erased": already_erased,
            "counts": erasure.counts,
        }
