"""What happened to customers, for the layers above (campaign triggers) to react to.

Customers is a lower layer: it must not import what listens. ``customers.services`` sends these
signals after the transaction that wrote the rows has committed (``transaction.on_commit``), with
``send_robust`` so that a failing receiver never fails the load that already happened. Receivers
must be cheap: they run inside the API request or the CLI load that caused them.

- ``customers_registered``: ``customer_ids`` (list[int]) — customers created by a load.
- ``receipts_loaded``: ``receipts`` (list[ReceiptFact]) — receipts that did not exist before
  (reloading a receipt updates it and is not sent again).
- ``events_recorded``: ``events`` (list[EventFact]) — every event appended.
- ``customer_erased``: ``sc_id`` (int), ``erased_at`` (datetime), ``actor_label`` (str) — a
  customer's personal data was erased (docs/privacy.md). Carries no personal data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.dispatch import Signal

log = logging.getLogger("tagbase.customers")

customers_registered = Signal()
receipts_loaded = Signal()
events_recorded = Signal()
customer_erased = Signal()


@dataclass(frozen=True)
class ReceiptFact:
    customer_id: int
    number: str
    amount: Decimal | None
    date: datetime | None


@dataclass(frozen=True)
class EventFact:
    customer_id: int
    name: str
    payload: dict[str, Any]
    occurred_at: datetime | None


def send_on_commit(signal: Signal, **kwargs: Any) -> None:
    """Send ``signal`` once the current transaction commits (at once outside one)."""

    def send() -> None:
        for receiver, result in signal.send_robust(sender=None, **kwargs):
            if isinstance(result, Exception):
                log.error("signal receiver %r failed: %s", receiver, result, exc_info=result)

    transaction.on_commit(send)
