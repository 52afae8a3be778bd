"""*Date has come*: once, at ``at``, every customer enters. A moment that passed before the
campaign was activated does not fire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tagbase.audiences.services import CustomerSelection
from tagbase.campaigns.nodes import Param, as_datetime
from tagbase.campaigns.triggers import Trigger, customers_of
from tagbase.customers.models import Customer


class DateHasCome(Trigger):
    kind = "date"
    label = "Date has come"
    params = (Param("at", "datetime", label="Date and time"),)

    @classmethod
    def due(
        cls, campaign: Any, params: dict[str, Any], *, since: datetime, now: datetime
    ) -> CustomerSelection | None:
        at = as_datetime(params["at"])
        if since < at <= now:
            return customers_of(Customer.objects.all())
        return None
