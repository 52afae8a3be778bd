"""The action kinds: what a campaign does to the customers who reach a node. One module each;
``ACTIONS`` maps a kind to its class.

``execute`` takes the customer ids of one step (sorted, distinct) and returns the ids per output
port. It runs inside the engine's step transaction: database writes it makes (memberships,
outbox messages) commit together with the step or not at all. An ``ActionError`` is a refusal
that retrying will not cure (the audience was deleted): the step is recorded with the error and
its customers stop there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tagbase.accounts.actors import Actor
from tagbase.campaigns.nodes import NodeKind

if TYPE_CHECKING:
    from tagbase.campaigns.models import Campaign, OutboxMessage

Ports = dict[str, list[int]]


class ActionError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class StepContext:
    campaign: Campaign
    node: str
    batch_id: int
    params: dict[str, Any]
    now: datetime
    outbox: list[OutboxMessage] = field(default_factory=list)

    @property
    def actor(self) -> Actor:
        return Actor.system(f"campaign:{self.campaign.pk}")

    @property
    def source_ref(self) -> str:
        return f"campaign {self.campaign.pk} step {self.node}"


class Action(NodeKind):
    @classmethod
    def hold_until(cls, params: dict[str, Any], now: datetime) -> datetime:
        """When customers arriving at this node may run it (waits say later)."""
        return now

    @classmethod
    def execute(cls, ids: list[int], ctx: StepContext) -> Ports:
        raise NotImplementedError


def _registry() -> dict[str, type[Action]]:
    from tagbase.campaigns.actions import (
        audience,
        control_group,
        filter,
        limit,
        notify_manager,
        select_segment,
        send_message,
        split,
        wait,
        wait_until,
    )

    kinds = [
        audience.AudienceAction,
        filter.FilterCustomers,
        select_segment.SelectFromSegment,
        wait.Wait,
        wait_until.WaitUntil,
        send_message.SendMessage,
        limit.LimitParticipants,
        split.Split,
        control_group.ControlGroup,
        notify_manager.NotifyManager,
    ]
    return {k.kind: k for k in kinds}


ACTIONS: dict[str, type[Action]] = _registry()
