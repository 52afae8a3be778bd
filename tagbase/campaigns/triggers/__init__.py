"""The trigger kinds: what lets customers into a campaign. One module each; ``TRIGGERS`` maps a
kind to its class.

An *event* trigger (``listens`` set) picks customers out of what a load just wrote
(``customers.signals``); a *scheduled* trigger (``listens`` empty) is asked by the worker's
tick which customers are due between its last firing and now.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.db.models import QuerySet

from tagbase.campaigns.nodes import NodeKind

if TYPE_CHECKING:
    from tagbase.campaigns.models import Campaign


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
    ) -> QuerySet[Any] | list[int] | None:
        """Customer ids (a values_list queryset or a list) to let in now, or None when it does
        not fire. ``since`` is the last firing (or the activation)."""
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
