"""The campaign engine: let customers in, move them through the graph, step by step.

- ``enter`` lets customers into an active campaign (the re-entry interval enforced per customer)
  as one ``Batch``: ``Entry`` rows, the trigger's ``StepRun`` and tokens at the trigger's next
  nodes, in one transaction. The customers are a list of ids or SQL (a scheduled trigger's
  ``CustomerSelection``): never loaded into Python, written with ``INSERT … SELECT``.
- ``run_step`` runs one node for the due tokens of one batch (at most TAGBASE_CAMPAIGN_STEP_SIZE
  customers) in ONE transaction: lock the campaign row (steps of a campaign run one at a time;
  a campaign that is no longer active does nothing), delete the tokens it consumes, execute the
  action (memberships, outbox rows), write the tokens of the next nodes, the ``StepRun`` and one
  ``Passage`` per customer. A crash anywhere inside rolls all of it back: the tokens are still
  there and the step runs again, whole, later; a step that committed is never run again for
  those customers. The step's own writes are set-based (``campaigns.bulk``): one DELETE …
  RETURNING consumes the tokens, one INSERT … SELECT per port writes tokens and passages.
- A token's ``due_at`` is when its node may run: now, or later for waits (``hold_until``).
- ``fire_scheduled`` asks the scheduled triggers (dates, repeats, days since registration,
  segment entries) whether they fire, claiming each firing in the same transaction as the entry.

``now`` is a parameter everywhere so tests run with a fake clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tagbase.audiences.services import CustomerSelection
from tagbase.campaigns import bulk, outbox
from tagbase.campaigns.actions import ActionError, Ports, StepContext
from tagbase.campaigns.graph import Graph
from tagbase.campaigns.models import (
    Batch,
    Campaign,
    CampaignStatus,
    OutboxMessage,
    StepRun,
    Token,
)
from tagbase.campaigns.triggers import SCHEDULED, TRIGGERS

log = logging.getLogger("tagbase.campaigns")
CHUNK = 5_000  # outbox messages per INSERT


# --- Entering -------------------------------------------------------------------------------


def enter(
    campaign_id: int,
    customers: Iterable[int] | CustomerSelection,
    *,
    context: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Batch | None:
    """Let these customers into the campaign: a list of ids (an event's customers) or a
    ``CustomerSelection`` (a scheduled trigger's customers, chosen by SQL and never loaded into
    Python). Ids that are no customer are ignored; customers the re-entry interval keeps out are
    counted in ``requested`` but not ``entered``. Returns None (and does nothing) unless the
    campaign is active.

    Set-based: the ``Entry`` rows are one ``INSERT … SELECT`` that checks the re-entry interval
    against earlier entries, the tokens at the trigger's next nodes one ``INSERT … SELECT`` from
    the batch's entries; all of it in one transaction with the ``Batch`` and the trigger's
    ``StepRun``."""
    now = now or timezone.now()
    selection = (
        customers if isinstance(customers, CustomerSelection) else bulk.selection_of(customers)
    )
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None or campaign.status != CampaignStatus.ACTIVE:
            return None
        graph = Graph(campaign.graph)
        batch = Batch.objects.create(
            campaign=campaign,
            version=campaign.version,
            trigger_kind=campaign.trigger_kind,
            context=context or {},
            created_at=now,
        )
        batch.requested, batch.entered = bulk.insert_entries(
            campaign.pk, batch.pk, campaign.version, selection, campaign.reentry_days, now
        )
        Batch.objects.filter(pk=batch.pk).update(requested=batch.requested, entered=batch.entered)
        trigger = graph.trigger
        StepRun.objects.create(
            campaign=campaign,
            batch=batch,
            node=trigger,
            kind=campaign.trigger_kind,
            count_in=batch.requested,
            counts_out={"out": batch.entered},
            started_at=now,
            finished_at=now,
        )
        if batch.entered:
            for target in graph.targets(trigger, "out"):
                due = graph.action(target).hold_until(graph.nodes[target]["params"], now)
                bulk.tokens_from_entries(campaign.pk, batch.pk, target, due)
    return batch


def _emit(
    campaign: Campaign, graph: Graph, batch_id: int, node: str, ports: Ports, now: datetime
) -> None:
    """Tokens for every customer on every edge leaving ``node`` (one statement per edge)."""
    for port, ids in ports.items():
        if not ids:
            continue
        for target in graph.targets(node, port):
            due = graph.action(target).hold_until(graph.nodes[target]["params"], now)
            bulk.insert_tokens(campaign.pk, batch_id, target, ids, due)


# --- Running --------------------------------------------------------------------------------


def due_steps(campaign_id: int, now: datetime) -> list[tuple[str, int]]:
    """(node, batch) pairs with due tokens, in graph order then batch order."""
    graph = Graph(Campaign.objects.values_list("graph", flat=True).get(pk=campaign_id))
    rank = {node: i for i, node in enumerate(graph.order())}
    pairs = set(
        Token.objects.filter(campaign_id=campaign_id, due_at__lte=now)
        .values_list("node", "batch_id")
        .distinct()
    )
    return sorted(pairs, key=lambda p: (rank.get(p[0], -1), p[1]))


def run_due(campaign_id: int, *, now: datetime | None = None) -> int:
    """Run steps until none of the campaign's tokens is due. Returns the number of steps run.
    Does nothing unless the campaign is active."""
    now = now or timezone.now()
    ran = 0
    while True:
        steps = due_steps(campaign_id, now)
        if not steps:
            return ran
        progressed = False
        for node, batch_id in steps:
            if run_step(campaign_id, node, batch_id, now=now) is None:
                return ran  # the campaign stopped being active
            ran += 1
            progressed = True
        if not progressed:  # pragma: no cover - defensive
            return ran


def run_step(
    campaign_id: int, node: str, batch_id: int, *, now: datetime | None = None
) -> StepRun | None:
    """Run ``node`` for the due tokens of one batch, in one transaction (module docstring).
    None when the campaign is not active or nothing was due."""
    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None or campaign.status != CampaignStatus.ACTIVE:
            return None
        ids = bulk.take_tokens(
            campaign_id, node, batch_id, now, settings.TAGBASE_CAMPAIGN_STEP_SIZE
        )
        if not ids:
            return None
        graph = Graph(campaign.graph)
        step = StepRun(
            campaign=campaign, batch_id=batch_id, node=node, count_in=len(ids), started_at=now
        )
        if node not in graph.nodes:
            step.kind = "removed"
            step.error = f"node {node!r} is not in version {campaign.version} of the campaign"
            ports: Ports = {}
        else:
            step.kind = graph.nodes[node]["kind"]
            ports = _execute(campaign, graph, node, batch_id, ids, now, step)
            _emit(campaign, graph, batch_id, node, ports, now)
        step.counts_out = {port: len(out) for port, out in ports.items()}
        step.finished_at = timezone.now()
        step.save()
        _record_passages(step, ids, ports)
    return step


def _record_passages(step: StepRun, ids: list[int], ports: Ports) -> None:
    """One ``Passage`` per customer of the step: the port they left by, or "" if it stopped
    them (one statement per port)."""
    passed: dict[int, str] = {}
    for port, out in ports.items():
        for customer_id in out:
            passed.setdefault(customer_id, port)
    by_port: dict[str, list[int]] = {}
    for customer_id in ids:
        by_port.setdefault(passed.get(customer_id, ""), []).append(customer_id)
    for port, customer_ids in by_port.items():
        bulk.insert_passages(step.pk, port, customer_ids)


def _execute(
    campaign: Campaign,
    graph: Graph,
    node: str,
    batch_id: int,
    ids: list[int],
    now: datetime,
    step: StepRun,
) -> Ports:
    action = graph.action(node)
    ctx = StepContext(campaign, node, batch_id, graph.nodes[node]["params"], now)
    try:
        with transaction.atomic():  # a savepoint: a refused action leaves no partial writes
            ports = action.execute(ids, ctx)
            messages = OutboxMessage.objects.bulk_create(ctx.outbox, batch_size=CHUNK)
    except ActionError as exc:
        step.error = exc.message
        log.warning("campaign %s step %s: %s", campaign.pk, node, exc.message)
        return {}
    if messages:
        sent = [m.pk for m in messages if m.pk is not None]
        transaction.on_commit(lambda: outbox.deliver(sent or None))
    return ports


# --- Scheduled triggers ---------------------------------------------------------------------


def fire_scheduled(*, now: datetime | None = None) -> list[int]:
    """Fire every active campaign whose scheduled trigger is due. Returns the batches made."""
    now = now or timezone.now()
    candidates = Campaign.objects.filter(
        status=CampaignStatus.ACTIVE, trigger_kind__in=sorted(SCHEDULED)
    ).values_list("pk", flat=True)
    batches = []
    for campaign_id in list(candidates):
        batch = fire(campaign_id, now=now)
        if batch is not None:
            batches.append(batch.pk)
    return batches


def fire(campaign_id: int, *, now: datetime) -> Batch | None:
    """One scheduled trigger: ask it, note the firing and let the customers in, together."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None or campaign.status != CampaignStatus.ACTIVE:
            return None
        if campaign.trigger_kind not in SCHEDULED:
            return None
        graph = Graph(campaign.graph)
        since = campaign.fired_at or campaign.created_at
        if since >= now:
            return None
        params = graph.nodes[graph.trigger]["params"]
        due = TRIGGERS[campaign.trigger_kind].due(campaign, params, since=since, now=now)
        Campaign.objects.filter(pk=campaign.pk).update(fired_at=now)
        if due is None:
            return None
        return enter(campaign.pk, due, context={"trigger": campaign.trigger_kind}, now=now)


def campaigns_with_due_tokens(now: datetime) -> list[int]:
    due = Token.objects.filter(due_at__lte=now).values("campaign_id")
    return list(
        Campaign.objects.filter(Q(pk__in=due), status=CampaignStatus.ACTIVE).values_list(
            "pk", flat=True
        )
    )
