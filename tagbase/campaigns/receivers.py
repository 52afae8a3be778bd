"""Campaign triggers listening to ``customers.signals``.

Each receiver makes one indexed query (active campaigns whose trigger kind listens to that
signal; usually none) and, for each such campaign whose trigger matches some of the customers,
enqueues ``enter_task``: the request or load that sent the signal never runs a campaign itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tagbase.campaigns.graph import Graph
from tagbase.campaigns.models import Campaign, CampaignStatus
from tagbase.campaigns.tasks import enter_task
from tagbase.campaigns.triggers import TRIGGERS, listening
from tagbase.customers.signals import customers_registered, events_recorded, receipts_loaded


def _fire(signal_name: str, facts: Sequence[Any]) -> list[int]:
    kinds = listening(signal_name)
    campaigns = Campaign.objects.filter(status=CampaignStatus.ACTIVE, trigger_kind__in=kinds)
    enqueued = []
    for campaign_id, kind, data in campaigns.values_list("pk", "trigger_kind", "graph"):
        graph = Graph(data)
        ids = TRIGGERS[kind].match(graph.nodes[graph.trigger]["params"], facts)
        if ids:
            enter_task.enqueue(campaign_id, ids, {"trigger": kind})
            enqueued.append(campaign_id)
    return enqueued


def on_registered(sender: Any, customer_ids: list[int], **kwargs: Any) -> list[int]:
    return _fire("registered", customer_ids)


def on_receipts(sender: Any, receipts: Sequence[Any], **kwargs: Any) -> list[int]:
    return _fire("receipts", receipts)


def on_events(sender: Any, events: Sequence[Any], **kwargs: Any) -> list[int]:
    return _fire("events", events)


def connect() -> None:
    customers_registered.connect(on_registered, dispatch_uid="campaigns.registered")
    receipts_loaded.connect(on_receipts, dispatch_uid="campaigns.receipts")
    events_recorded.connect(on_events, dispatch_uid="campaigns.events")
