"""*Control group*: ``percent`` of the customers are held out (``control``), the rest go on
(``out``); deterministic per customer like the A/B split."""

from __future__ import annotations

from tagbase.campaigns.actions import Action, Ports, StepContext
from tagbase.campaigns.actions.split import SCALE, bucket
from tagbase.campaigns.nodes import Param


class ControlGroup(Action):
    kind = "control_group"
    label = "Control group"
    params = (Param("percent", "int", min=1, max=99, label="Percent held out"),)
    ports = ("out", "control")

    @classmethod
    def execute(cls, ids: list[int], ctx: StepContext) -> Ports:
        cut = ctx.params["percent"] * SCALE // 100
        salt = f"control:{ctx.campaign.pk}:{ctx.node}"
        held = {i for i in ids if bucket(salt, i) < cut}
        return {"out": [i for i in ids if i not in held], "control": [i for i in ids if i in held]}
