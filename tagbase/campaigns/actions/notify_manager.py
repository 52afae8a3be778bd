"""*Notify a manager*: one e-mail to ``email`` per step saying how many customers reached the
node; every customer goes on (``out``)."""

from __future__ import annotations

from tagbase.campaigns.actions import Action, Ports, StepContext
from tagbase.campaigns.models import Channel, OutboxMessage
from tagbase.campaigns.nodes import Param


class NotifyManager(Action):
    kind = "notify_manager"
    label = "Notify a manager"
    params = (
        Param("email", "email", label="Manager's e-mail"),
        Param("subject", "text", required=False, label="Subject"),
    )

    @classmethod
    def execute(cls, ids: list[int], ctx: StepContext) -> Ports:
        name = ctx.campaign.name
        ctx.outbox.append(
            OutboxMessage(
                campaign=ctx.campaign,
                node=ctx.node,
                channel=Channel.EMAIL,
                to=ctx.params["email"],
                subject=(ctx.params.get("subject") or f"Campaign “{name}”")[:300],
                body=f"{len(ids)} customers reached step {ctx.node} of campaign “{name}”.",
                created_at=ctx.now,
            )
        )
        return {"out": ids}
