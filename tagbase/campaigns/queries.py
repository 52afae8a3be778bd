"""Read-only questions about campaigns, for the pages, the API and the CLI (writes are in
``services``; the engine writes what is read here).

- ``campaign_list``: campaigns with the number of customers who entered, searchable, optionally
  only the active ones.
- ``node_stats``: per node of the graph, customers in, per output port out, customers stopped,
  step runs and the last error — the counts the canvas shows on its nodes.
- ``entries_per_day``: customers who entered per calendar day (in the site's time zone).
- ``recent_batches``: the run history (one row per trigger firing) with its step runs.
- ``customer_campaigns``: the campaigns a customer entered and the steps they passed, with the
  port they left by — the profile's *Campaigns* section.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from tagbase.audiences.models import Audience
from tagbase.campaigns.graph import KINDS
from tagbase.campaigns.models import (
    Batch,
    Campaign,
    CampaignStatus,
    CampaignVersion,
    Entry,
    Passage,
    StepRun,
)
from tagbase.lib.names import audience_name_key


def campaign_list(q: str = "", *, only_active: bool = False) -> QuerySet[Campaign]:
    """Campaigns by name, each with ``entered`` (customers let in, all batches)."""
    entered = (
        Batch.objects.filter(campaign=OuterRef("pk"))
        .order_by()
        .values("campaign")
        .annotate(total=Sum("entered"))
        .values("total")
    )
    campaigns = Campaign.objects.annotate(
        entered=Coalesce(Subquery(entered, output_field=IntegerField()), Value(0))
    ).select_related("created_by", "updated_by")
    if only_active:
        campaigns = campaigns.filter(status=CampaignStatus.ACTIVE)
    if q.strip():
        campaigns = campaigns.filter(name_key__contains=audience_name_key(q))
    return campaigns.order_by("name_key")


def node_stats(campaign_id: int) -> dict[str, dict[str, Any]]:
    """``{node id: {"in", "out": {port: n}, "stopped", "runs", "errors", "last_error"}}`` over
    every step run of the campaign (nodes that never ran are absent)."""
    stats: dict[str, dict[str, Any]] = {}
    runs = (
        StepRun.objects.filter(campaign_id=campaign_id)
        .order_by("started_at", "id")
        .values_list("node", "count_in", "counts_out", "error")
    )
    for node, count_in, counts_out, error in runs.iterator(chunk_size=2000):
        item = stats.setdefault(
            node, {"in": 0, "out": defaultdict(int), "stopped": 0, "runs": 0, "errors": 0}
        )
        item["in"] += count_in
        left = 0
        for port, n in (counts_out or {}).items():
            item["out"][port] += int(n)
            left += int(n)
        item["stopped"] += max(count_in - left, 0)
        item["runs"] += 1
        if error:
            item["errors"] += 1
            item["last_error"] = error
    for item in stats.values():
        item["out"] = dict(item["out"])
        item.setdefault("last_error", "")
    return stats


def entries_per_day(
    campaign_id: int, *, days: int = 30, today: date | None = None
) -> list[tuple[date, int]]:
    """Customers who entered on each of the last ``days`` days (oldest first, zeros included)."""
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    rows = (
        Batch.objects.filter(campaign_id=campaign_id, created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .order_by()
        .values("day")
        .annotate(n=Sum("entered"))
        .values_list("day", "n")
    )
    counts = {day: int(n or 0) for day, n in rows}
    return [
        (first + timedelta(days=i), counts.get(first + timedelta(days=i), 0)) for i in range(days)
    ]


def recent_batches(campaign_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The latest trigger firings, newest first, each with its step runs in order."""
    batches = list(
        Batch.objects.filter(campaign_id=campaign_id).order_by("-created_at", "-id")[:limit]
    )
    steps: dict[int, list[StepRun]] = defaultdict(list)
    for step in StepRun.objects.filter(batch__in=batches).order_by("started_at", "id"):
        assert step.batch_id is not None
        steps[step.batch_id].append(step)
    return [{"batch": b, "steps": steps[b.pk]} for b in batches]


def describe_node(node: dict[str, Any], audiences: dict[int, str] | None = None) -> str:
    """A node in words: its kind's label, and for audience actions what they do to which
    audience ("Add to audience “VIP”")."""
    kind = KINDS.get(node.get("kind", ""))
    label = kind.label if kind else str(node.get("kind", "?"))
    params = node.get("params") or {}
    if node.get("kind") == "audience" and params.get("audience") is not None:
        name = (audiences or {}).get(params["audience"], f"#{params['audience']}")
        verb = "Add to" if params.get("action") == "add" else "Remove from"
        return f"{verb} audience “{name}”"
    return label


def customer_campaigns(customer_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The customer's latest campaign entries, newest first: campaign, when, and the steps they
    passed (node, what it is in words, port left by, when). Nodes are described as the version
    the customer entered had them."""
    entries = list(
        Entry.objects.filter(customer_id=customer_id)
        .select_related("campaign")
        .order_by("-entered_at", "-id")[:limit]
    )
    if not entries:
        return []
    batch_ids = [e.batch_id for e in entries]
    passages: dict[int, list[tuple[StepRun, str]]] = defaultdict(list)
    for passage in (
        Passage.objects.filter(customer_id=customer_id, step__batch_id__in=batch_ids)
        .select_related("step")
        .order_by("step__started_at", "step_id")
    ):
        assert passage.step.batch_id is not None
        passages[passage.step.batch_id].append((passage.step, passage.port))
    graphs = {
        (v.campaign_id, v.version): v.graph
        for v in CampaignVersion.objects.filter(
            campaign_id__in={e.campaign_id for e in entries},
            version__in={e.version for e in entries},
        )
    }
    audience_ids = {
        node["params"]["audience"]
        for graph in graphs.values()
        for node in graph.get("nodes", [])
        if node.get("kind") == "audience" and "audience" in node.get("params", {})
    }
    audiences = dict(Audience.objects.filter(pk__in=audience_ids).values_list("pk", "name"))
    out = []
    for entry in entries:
        nodes = {
            n["id"]: n for n in graphs.get((entry.campaign_id, entry.version), {}).get("nodes", [])
        }
        steps = []
        for step, port in passages[entry.batch_id]:
            node = nodes.get(step.node, {"kind": step.kind})
            steps.append(
                {
                    "node": step.node,
                    "kind": step.kind,
                    "title": describe_node(node, audiences),
                    "port": port,
                    "at": step.started_at,  # the engine's clock when the step ran
                    "error": step.error,
                }
            )
        out.append({"campaign": entry.campaign, "entered_at": entry.entered_at, "steps": steps})
    return out
