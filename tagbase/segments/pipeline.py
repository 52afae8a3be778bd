"""The worker side of "Include in a target audience": claim the job, then do it in one
transaction.

The claim is a conditional UPDATE (a lease), so two workers never run the job at once. The work
itself — lock the job row, check it is still ours and not finished, evaluate the rule, change the
memberships through ``audiences.services`` as one ``segment`` operation, mark the job succeeded —
is one transaction: a worker killed anywhere inside it leaves nothing changed, and the job is
taken over when the lease expires (the sweeper re-enqueues it). It runs exactly once.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from tagbase.accounts.actors import Actor
from tagbase.audiences.models import OperationKind
from tagbase.audiences.services import (
    AudienceError,
    CustomerSelection,
    add_customers_to_audience,
    remove_customers_from_audience,
)
from tagbase.segments.compiler import member_ids_sql
from tagbase.segments.models import JobAction, JobStatus, SegmentJob
from tagbase.segments.rules import RuleError, validate

log = logging.getLogger("tagbase.segments")
RUNNABLE = (JobStatus.QUEUED, JobStatus.RUNNING)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def claim_job(job_id: int, owner: str) -> bool:
    now = timezone.now()
    claimable = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    won = SegmentJob.objects.filter(claimable, pk=job_id, status__in=RUNNABLE).update(
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=settings.TAGBASE_JOB_LEASE_SECONDS),
        status=JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        started_at=now,
    )
    return won == 1


def run_segment_job(job_id: int, owner: str | None = None) -> SegmentJob | None:
    """Run the job if this worker can claim it; None when another worker holds it or it is
    finished."""
    owner = owner or worker_id()
    if not claim_job(job_id, owner):
        return None
    try:
        with transaction.atomic():
            job = SegmentJob.objects.select_for_update().get(pk=job_id)
            if job.is_finished or job.lease_owner != owner:
                return None
            _apply(job)
            job.status = JobStatus.SUCCEEDED
            job.finished_at = timezone.now()
            job.lease_owner, job.lease_expires_at = "", None
            job.save()
        return job
    except (AudienceError, RuleError) as exc:
        message = getattr(exc, "message", str(exc))
        _fail(job_id, owner, message)
    except DatabaseError:
        # Nothing was changed; release the lease so the sweeper hands the job out again.
        SegmentJob.objects.filter(pk=job_id, lease_owner=owner).update(
            lease_owner="", lease_expires_at=None
        )
        raise
    return SegmentJob.objects.get(pk=job_id)


def _apply(job: SegmentJob) -> None:
    if job.audience_id is None:
        raise AudienceError("The audience was deleted before the job ran.")
    tree = validate(job.rules)
    sql, params = member_ids_sql(tree)
    actor = Actor(user=job.created_by, label=job.actor_label or "segment")
    change = (
        add_customers_to_audience if job.action == JobAction.ADD else remove_customers_from_audience
    )
    job.operation = change(
        job.audience_id,
        CustomerSelection(sql, params, distinct=True, customers_only=True),
        actor=actor,
        kind=OperationKind.SEGMENT,
        source_ref=f"segment {job.segment_id}: {job.segment_name}"[:200],
    )


def _fail(job_id: int, owner: str, message: str) -> None:
    log.warning("segment job %s failed: %s", job_id, message)
    SegmentJob.objects.filter(pk=job_id, lease_owner=owner).update(
        status=JobStatus.FAILED,
        error=message,
        finished_at=timezone.now(),
        lease_owner="",
        lease_expires_at=None,
    )
