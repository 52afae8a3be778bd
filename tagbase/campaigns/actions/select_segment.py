"""*Select customers from a segment*: pass on (``out``) only the customers who are members of a
saved segment now; the others stop here."""

from __future__ import annotations

from tagbase.campaigns.actions import Action, Ports, StepContext
from tagbase.campaigns.actions.filter import matching, rule_of
from tagbase.campaigns.nodes import Param


class SelectFromSegment(Action):
    kind = "select_segment"
    label = "Select customers from a segment"
    params = (Param("segment", "segment", label="Segment"),)

    @classmethod
    def execute(cls, ids: list[int], ctx: StepContext) -> Ports:
        members = matching(ids, rule_of(ctx.node, ctx.params), ctx)
        return {"out": [i for i in ids if i in members]}
