"""*Receipt issued*: a new receipt was loaded, optionally only one of at least ``min_amount``."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from tagbase.campaigns.nodes import Param
from tagbase.campaigns.triggers import Trigger


class ReceiptIssued(Trigger):
    kind = "receipt_issued"
    label = "Receipt issued"
    listens = "receipts"
    params = (Param("min_amount", "decimal", required=False, label="Minimum amount", min=0),)

    @classmethod
    def match(cls, params: dict[str, Any], facts: Sequence[Any]) -> list[int]:
        floor = params.get("min_amount")
        least = Decimal(floor) if floor is not None else None
        return sorted(
            {
                f.customer_id
                for f in facts
                if least is None or (f.amount is not None and Decimal(f.amount) >= least)
            }
        )
