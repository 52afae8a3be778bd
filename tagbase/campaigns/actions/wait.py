"""*Wait*: customers go on ``amount`` minutes, hours or days after they reached the node."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tagbase.campaigns.actions import Action, Ports, StepContext
from tagbase.campaigns.nodes import Param


class Wait(Action):
    kind = "wait"
    label = "Wait"
    params = (
        Param("amount", "int", min=1, max=100_000, label="How long"),
        Param("unit", "text", choices=("minutes", "hours", "days"), label="Unit"),
    )

    @classmethod
    def hold_until(cls, params: dict[str, Any], now: datetime) -> datetime:
        return now + timedelta(**{params["unit"]: params["amount"]})

    @classmethod
    def execute(cls, ids: list[int], ctx: StepContext) -> Ports:
        return {"out": ids}
