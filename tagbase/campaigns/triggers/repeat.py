"""*Repeat date*: every day, week (on ``weekday``, 1 = Monday) or month (on ``day``; a month
without that day fires on its last day) at ``time`` (in TIME_ZONE), every customer enters. A
worker that was down for several periods fires once, not once per missed period."""

from __future__ import annotations

import calendar
from datetime import datetime, time, timedelta
from typing import Any

from django.utils import timezone

from tagbase.audiences.services import CustomerSelection
from tagbase.campaigns.nodes import GraphError, Param
from tagbase.campaigns.triggers import Trigger, customers_of
from tagbase.customers.models import Customer


class RepeatDate(Trigger):
    kind = "repeat"
    label = "Repeat date"
    params = (
        Param("every", "text", choices=("day", "week", "month"), label="Every"),
        Param("time", "time", label="At (HH:MM)"),
        Param("weekday", "int", required=False, min=1, max=7, label="Weekday (1 = Monday)"),
        Param("day", "int", required=False, min=1, max=31, label="Day of the month"),
    )

    @classmethod
    def check(cls, node_id: str, params: dict[str, Any]) -> None:
        if params["every"] == "week" and "weekday" not in params:
            raise GraphError("is required for a weekly repeat", node=node_id, field="weekday")
        if params["every"] == "month" and "day" not in params:
            raise GraphError("is required for a monthly repeat", node=node_id, field="day")

    @classmethod
    def last_moment(cls, params: dict[str, Any], now: datetime) -> datetime:
        """The latest scheduled moment at or before ``now``."""
        local = timezone.localtime(now)
        hour, minute = (int(x) for x in params["time"].split(":"))
        at = time(hour, minute)

        def moment(day: Any) -> datetime:
            return timezone.make_aware(datetime.combine(day, at), local.tzinfo)

        today = local.date()
        if params["every"] == "day":
            day = today
            step = timedelta(days=1)
            return moment(day) if moment(day) <= now else moment(day - step)
        if params["every"] == "week":
            day = today - timedelta(days=(today.isoweekday() - params["weekday"]) % 7)
            return moment(day) if moment(day) <= now else moment(day - timedelta(days=7))
        year, month = today.year, today.month
        for _ in range(2):
            last = calendar.monthrange(year, month)[1]
            candidate = moment(today.replace(year=year, month=month, day=min(params["day"], last)))
            if candidate <= now:
                return candidate
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def due(
        cls, campaign: Any, params: dict[str, Any], *, since: datetime, now: datetime
    ) -> CustomerSelection | None:
        if since < cls.last_moment(params, now) <= now:
            return customers_of(Customer.objects.all())
        return None
