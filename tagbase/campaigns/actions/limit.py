"""*Limit number of participants*: at most ``max`` customers ever pass this node (``out``, the
lowest ids first within a step); the rest go to ``over``. Steps of one campaign run one at a
time, so the count is exact."""

from __future__ import annotations

from tagbase.campaigns.actions import Action, Ports, StepContext
from tagbase.campaigns.models import StepRun
from tagbase.campaigns.nodes import Param


class LimitParticipants(Action):
    kind = "limit"
    label = "Limit number of participants"
    params = (Param("max", "int", min=1, label="At most"),)
    ports = ("out", "over")

    @classmethod
    def execute(cls, ids: list[int], ctx: StepContext) -> Ports:
        runs = StepRun.objects.filter(campaign=ctx.campaign, node=ctx.node)
        passed = sum(int(c.get("out", 0)) for c in runs.values_list("counts_out", flat=True))
        room = max(0, ctx.params["max"] - passed)
        return {"out": ids[:room], "over": ids[room:]}
