"""Plain builders for campaign tests: nodes, edges, graphs and the Goal's example chain."""

from __future__ import annotations

import itertools
from typing import Any

from tagbase.accounts.actors import Actor
from tagbase.campaigns import services
from tagbase.campaigns.models import Campaign

ACTOR = Actor.system("test")


def node(node_id: str, kind: str, **params: Any) -> dict[str, Any]:
    return {"id": node_id, "kind": kind, "params": params, "position": {"x": 0, "y": 0}}


def edge(source: str, target: str, port: str = "out") -> dict[str, str]:
    return {"from": source, "port": port, "to": target}


def graph(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodes": [i for i in items if "kind" in i],
        "edges": [i for i in items if "to" in i],
    }


def chain(trigger: dict[str, Any], *actions: dict[str, Any]) -> dict[str, Any]:
    """A straight line: trigger → actions[0] → actions[1] → … through ``out``."""
    nodes = [trigger, *actions]
    return graph(*nodes, *(edge(a["id"], b["id"]) for a, b in itertools.pairwise(nodes)))


def make_campaign(
    g: dict[str, Any], *, name: str = "", active: bool = True, reentry_days: int | None = 0
) -> Campaign:
    campaign = services.create_campaign(
        name or f"Campaign {Campaign.objects.count() + 1}",
        g,
        actor=ACTOR,
        reentry_days=reentry_days,
    )
    if active:
        campaign = services.activate_campaign(campaign, actor=ACTOR)
    return campaign


TOTAL_AT_LEAST_10000 = {
    "op": "and",
    "rules": [{"field": "receipts.total_amount", "operator": "gte", "value": "10000"}],
}


def welcome_vips(vip_id: int, prospects_id: int) -> dict[str, Any]:
    """The issue's Goal: receipt issued → filter total spent ≥ 10,000 → positive: add to VIP →
    send e-mail; negative: wait 7 days → remove from Prospects."""
    return graph(
        node("receipt", "receipt_issued"),
        node("big", "filter", rules=TOTAL_AT_LEAST_10000),
        node("vip", "audience", action="add", audience=vip_id),
        node("mail", "send_message", channel="email", subject="Welcome, {{ customer.first_name }}",
             template="Dear {{ customer.first_name }}, you are a VIP now."),
        node("week", "wait", amount=7, unit="days"),
        node("drop", "audience", action="remove", audience=prospects_id),
        edge("receipt", "big"),
        edge("big", "vip", "positive"),
        edge("vip", "mail"),
        edge("big", "week", "negative"),
        edge("week", "drop"),
    )  # fmt: skip
