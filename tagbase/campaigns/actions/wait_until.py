"""*Wait until a date*: customers go on at ``at`` (at once if it has passed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tagbase.campaigns.actions import Action, Ports, StepContext
from tagbase.campaigns.nodes import Param, as_datetime


class WaitUntil(Action):
    kind = "wait_until"
    label = "Wait until a date"
    params = (Param("at", "datetime", label="Date and time"),)

    @classmethod
    def hold_until(cls, params: dict[str, Any], now: datetime) -> datetime:
        return max(now, as_datetime(params["at"]))

    @classmethod
    def execute(cls, ids: list[int], ctx: StepContext) -> Ports:
        return {"out": ids}
