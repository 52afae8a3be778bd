"""*Days since registration*: a customer enters when ``days`` days have passed since they
registered — checked by every tick, for those who reached the mark since the previous one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tagbase.audiences.services import CustomerSelection
from tagbase.campaigns.nodes import Param
from tagbase.campaigns.triggers import Trigger, customers_of
from tagbase.customers.models import Customer


class DaysSinceRegistration(Trigger):
    kind = "days_since_registration"
    label = "Days since registration"
    params = (Param("days", "int", min=0, max=36_500, label="Days"),)

    @classmethod
    def due(
        cls, campaign: Any, params: dict[str, Any], *, since: datetime, now: datetime
    ) -> CustomerSelection | None:
        offset = timedelta(days=params["days"])
        return customers_of(
            Customer.objects.filter(
                registered_at__gt=since - offset, registered_at__lte=now - offset
            )
        )
