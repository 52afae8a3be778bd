"""Background tasks for campaigns (django-tasks, database backend) and the worker's tick.

``enter_task`` lets customers in and runs the campaign's due steps; ``run_campaign_task`` runs
due steps. ``tick`` (called by every worker's sweeper thread) fires scheduled triggers, queues
one run for each active campaign with due tokens (``run_queued_at`` keeps it to one queued run
per campaign; a mark older than the job lease is stale and is queued again) and delivers any
outbox message left pending.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_tasks import task

from tagbase.campaigns import engine, outbox
from tagbase.campaigns.models import Campaign


def _moment(text: str | None) -> datetime | None:
    return parse_datetime(text) if text else None


@task()
def enter_task(campaign_id: int, customer_ids: list[int], context: dict[str, Any]) -> str:
    batch = engine.enter(campaign_id, customer_ids, context=context)
    if batch is None:
        return "campaign not active"
    steps = engine.run_due(campaign_id)
    return f"batch {batch.pk}: {batch.entered} entered, {steps} steps"


@task()
def run_campaign_task(campaign_id: int, now: str | None = None) -> str:
    Campaign.objects.filter(pk=campaign_id).update(run_queued_at=None)
    return f"{engine.run_due(campaign_id, now=_moment(now))} steps"


def tick(*, now: datetime | None = None) -> dict[str, list[int]]:
    """One scheduler pass (see the module docstring). Safe from every worker at once."""
    moment = now or timezone.now()
    fired = engine.fire_scheduled(now=moment)
    stale = moment - timedelta(seconds=settings.TAGBASE_JOB_LEASE_SECONDS)
    queued = []
    for campaign_id in engine.campaigns_with_due_tokens(moment):
        claimable = Q(run_queued_at__isnull=True) | Q(run_queued_at__lt=stale)
        if Campaign.objects.filter(claimable, pk=campaign_id).update(run_queued_at=moment):
            run_campaign_task.enqueue(campaign_id, moment.isoformat() if now else None)
            queued.append(campaign_id)
    outbox.deliver()
    return {"batches": fired, "queued": queued}
