"""The campaign engine: let customers in, move them through the graph, step by step.

- ``enter`` lets customers into an active campaign (the re-entry interval enforced per customer)
  as one ``Batch``: ``Entry`` rows, the trigger's ``StepRun`` and tokens at the trigger's next
  nodes, in one transaction.
- ``run_step`` runs one node for the due tokens of one batch (at most TAGBASE_CAMPAIGN_STEP_SIZE
  customers) in ONE transaction: lock the campaign row (steps of a campaign run one at a time;
  a campaign that is no longer active does nothing), delete the tokens it consumes, execute the
  action (memberships, outbox rows), write the tokens of the next nodes, the ``StepRun`` and one
  ``Passage`` per customer. A crash anywhere inside rolls all of it back: the tokens are still
  there and the step runs again, whole, later; a step that committed is never run again for
  those customers.
- A token's ``due_at`` is when its node may run: now, or later for waits (``hold_until``).
- ``fire_scheduled`` asks the scheduled triggers (dates, repeats, days since registration,
  segment entries) whether they fire, claiming each firing in the same transaction as the entry.

``now`` is a parameter everywhere so tests run with a fake clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tagbase.campaigns import outbox
from tagbase.campaigns.actions import ActionError, Ports, StepContext
from tagbase.campaigns.graph import Graph
from tagbase.campaigns.models import (
    Batch,
    Campaign,
    CampaignStatus,
    Entry,
    OutboxMessage,
    Passage,
    StepRun,
    Token,
)
from tagbase.campaigns.triggers import SCHEDULED, TRIGGERS
from tagbase.customers.models import Customer
from tagbase.lib.sqlbits import chunked

log = logging.getLogger("tagbase.campaigns")
CHUNK = 5_000


class StepConflict(Exception):
    """Another process consumed the tokens this step selected; nothing was done."""


# --- Entering -------------------------------------------------------------------------------


def enter(
    campaign_id: int,
    customer_ids: Iterable[int],
    *,
    context: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Batch | None:
    """Let these customers into the campaign. Ids that are no customer are ignored; customers
    the re-entry interval keeps out are counted in ``requested`` but not ``entered``. Returns
    None (and does nothing) unless the campaign is active."""
    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None or campaign.status != CampaignStatus.ACTIVE:
            return None
        ids = sorted({int(i) for i in customer_ids})
        allowed = _allowed(campaign, ids, now)
        graph = Graph(campaign.graph)
        batch = Batch.objects.create(
            campaign=campaign,
            version=campaign.version,
            trigger_kind=campaign.trigger_kind,
            context=context or {},
            requested=len(ids),
            entered=len(allowed),
            created_at=now,
        )
        Entry.objects.bulk_create(
            [
                Entry(
                    campaign=campaign,
                    customer_id=c,
                    batch=batch,
                    version=campaign.version,
                    entered_at=now,
                )
                for c in allowed
            ],
            batch_size=CHUNK,
        )
        trigger = graph.trigger
        StepRun.objects.create(
            campaign=campaign,
            batch=batch,
            node=trigger,
            kind=campaign.trigger_kind,
            count_in=len(ids),
            counts_out={"out": len(allowed)},
            started_at=now,
            finished_at=now,
        )
        _emit(campaign, graph, batch.pk, trigger, {"out": allowed}, now)
    return batch


def _allowed(campaign: Campaign, ids: list[int], now: datetime) -> list[int]:
    """The customers among ``ids`` that exist and whose re-entry interval allows them in."""
    allowed: list[int] = []
    for part in chunked(ids, CHUNK):
        known = set(Customer.objects.filter(sc_id__in=part).values_list("sc_id", flat=True))
        if campaign.reentry_days != 0:
            entries = Entry.objects.filter(campaign=campaign, customer_id__in=part)
            if campaign.reentry_days is not None:
                entries = entries.filter(entered_at__gt=now - timedelta(days=campaign.reentry_days))
            known -= set(entries.values_list("customer_id", flat=True))
        allowed.extend(c for c in part if c in known)
    return allowed


def _emit(
    campaign: Campaign, graph: Graph, batch_id: int, node: str, ports: Ports, now: datetime
) -> None:
    """Tokens for every customer on every edge leaving ``node``."""
    tokens: list[Token] = []
    for port, ids in ports.items():
        for target in graph.targets(node, port):
            due = graph.action(target).hold_until(graph.nodes[target]["params"], now)
            tokens.extend(
                Token(campaign=campaign, batch_id=batch_id, node=target, customer_id=c, due_at=due)
                for c in ids
            )
    Token.objects.bulk_create(tokens, batch_size=CHUNK)


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
        due = Token.objects.filter(
            campaign_id=campaign_id, node=node, batch_id=batch_id, due_at__lte=now
        )
        rows = list(
            due.order_by("customer_id", "pk").values_list("pk", "customer_id")[
                : settings.TAGBASE_CAMPAIGN_STEP_SIZE
            ]
        )
        if not rows:
            return None
        for part in chunked([pk for pk, _ in rows], CHUNK):
            if Token.objects.filter(pk__in=part).delete()[0] != len(part):
                raise StepConflict(f"tokens of step {node} were taken by another process")
        ids = sorted({c for _, c in rows})
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
    them."""
    passed: dict[int, str] = {}
    for port, out in ports.items():
        for customer_id in out:
            passed.setdefault(customer_id, port)
    Passage.objects.bulk_create(
        (Passage(step=step, customer_id=c, port=passed.get(c, "")) for c in ids),
        batch_size=CHUNK,
    )


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
