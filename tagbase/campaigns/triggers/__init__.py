"""The trigger kinds: what lets customers into a campaign. One module each; ``TRIGGERS`` maps a
kind to its class.

An *event* trigger (``listens`` set) picks customers out of what a load just wrote
(``customers.signals``); a *scheduled* trigger (``listens`` empty) is asked by the worker's
tick which customers are due between its last firing and now, and answers with a
``CustomerSelection`` — SQL, not ids — so that "every customer" enters in constant memory
(``engine.enter`` writes the entries with one ``INSERT … SELECT``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.db.models import QuerySet

from tagbase.audiences.services import CustomerSelection
from tagbase.campaigns.nodes import NodeKind

if TYPE_CHECKING:
    from tagbase.campaigns.models import Campaign
    from tagbase.customers.models import Customer


def customers_of(customers: QuerySet[Customer]) -> CustomerSelection:
    """The customers a queryset chooses, as SQL for ``engine.enter`` (each customer once, and
    all of them customers: the entry skips the look-up)."""
    sql, params = customers.order_by().values_list("sc_id", flat=True).query.sql_with_params()
    return CustomerSelection(
        f"SELECT sc_id AS customer_id FROM ({sql}) AS chosen",
        tuple(params),
        distinct=True,
        customers_only=True,
    )


class Trigger(NodeKind):
    is_trigger = True
    # "registered", "receipts" or "events": the customers signal it reacts to; "" = scheduled.
    listens: ClassVar[str] = ""

    @classmethod
    def match(cls, params: dict[str, Any], facts: Sequence[Any]) -> list[int]:
        """Customer ids of the facts (registered ids, ReceiptFact, EventFact) that fire it."""
        raise NotImplementedError

    @classmethod
    def due(
        cls, campaign: Campaign, params: dict[str, Any], *, since: datetime, now: datetime
    ) -> CustomerSelection | None:
        """The customers to let in now (SQL: see ``customers_of``), or None when it does not
        fire. ``since`` is the last firing (or the activation). Runs inside the firing's
        transaction, under the campaign's row lock."""
        raise NotImplementedError


def _registry() -> dict[str, type[Trigger]]:
    from tagbase.campaigns.triggers import (
        customer_registered,
        date,
        days_since_registration,
        entered_segment,
        event_occurred,
        receipt_issued,
        repeat,
    )

    kinds = [
        customer_registered.CustomerRegistered,
        receipt_issued.ReceiptIssued,
        event_occurred.EventOccurred,
        date.DateHasCome,
        repeat.RepeatDate,
        days_since_registration.DaysSinceRegistration,
        entered_segment.EnteredSegment,
    ]
    return {k.kind: k for k in kinds}


TRIGGERS: dict[str, type[Trigger]] = _registry()
SCHEDULED = frozenset(kind for kind, t in TRIGGERS.items() if not t.listens)


def listening(signal_name: str) -> list[str]:
    """Trigger kinds that react to this customers signal."""
    return [kind for kind, t in TRIGGERS.items() if t.listens == signal_name]
