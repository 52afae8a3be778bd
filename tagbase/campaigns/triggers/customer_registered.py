"""*Customer registered*: a load created the customer (API or CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tagbase.campaigns.triggers import Trigger


class CustomerRegistered(Trigger):
    kind = "customer_registered"
    label = "Customer registered"
    listens = "registered"

    @classmethod
    def match(cls, params: dict[str, Any], facts: Sequence[Any]) -> list[int]:
        return sorted({int(customer_id) for customer_id in facts})
