"""The worker side of a set operation: claim the job, then do it in one transaction.

The claim is a conditional UPDATE (a lease), so two workers never run the job at once. The work
itself — lock the job row, check it is still ours and not finished, evaluate the expression,
change the target's memberships through ``audiences.services`` as ONE ``set`` operation, check
the operand audiences still exist, mark the job succeeded — is one transaction: a worker killed
anywhere inside it leaves nothing changed, and the job is taken over when the lease expires
(the sweeper re-enqueues it). It runs exactly once. This mirrors ``segments.pipeline``.
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
from tagbase.audiences.models import Audience, OperationKind
from tagbase.audiences.services import (
    AudienceError,
    CustomerSelection,
    add_customers_to_audience,
    replace_audience_members,
)
from tagbase.segments.rules import RuleError
from tagbase.sets.expressions import SetError, Source, parse, result_sql
from tagbase.sets.models import JobStatus, Mode, SetJob

log = logging.getLogger("tagbase.sets")
RUNNABLE = (JobStatus.QUEUED, JobStatus.RUNNING)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def claim_job(job_id: int, owner: str) -> bool:
    now = timezone.now()
    claimable = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    won = SetJob.objects.filter(claimable, pk=job_id, status__in=RUNNABLE).update(
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=settings.TAGBASE_JOB_LEASE_SECONDS),
        status=JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        started_at=now,
    )
    return won == 1


def run_set_job(job_id: int, owner: str | None = None) -> SetJob | None:
    """Run the job if this worker can claim it; None when another worker holds it or it is
    finished."""
    owner = owner or worker_id()
    if not claim_job(job_id, owner):
        return None
    try:
        with transaction.atomic():
            job = SetJob.objects.select_for_update().get(pk=job_id)
            if job.is_finished or job.lease_owner != owner:
                return None
            _apply(job)
            job.status = JobStatus.SUCCEEDED
            job.finished_at = timezone.now()
            job.lease_owner, job.lease_expires_at = "", None
            job.save()
        return job
    except (AudienceError, RuleError, SetError) as exc:
        _fail(job_id, owner, getattr(exc, "message", str(exc)))
    except DatabaseError:
        # Nothing was changed; release the lease so the sweeper hands the job out again.
        SetJob.objects.filter(pk=job_id, lease_owner=owner).update(
            lease_owner="", lease_expires_at=None
        )
        raise
    return SetJob.objects.get(pk=job_id)


def _apply(job: SetJob) -> None:
    if job.audience_id is None:
        raise SetError("The target audience was deleted before the job ran.")
    expression = parse(job.expression)
    sources = [Source.from_json(s) for s in job.sources]
    sql, params = result_sql(expression, sources)
    # Staged: the result is evaluated once, before the target changes (it may be an operand),
    # and the operation's counts agree with what it changed.
    selection = CustomerSelection(
        sql, tuple(params), distinct=True, customers_only=True, stage=True
    )
    change = replace_audience_members if job.mode == Mode.REPLACE else add_customers_to_audience
    job.operation = change(
        job.audience_id,
        selection,
        actor=Actor(user=job.created_by, label=job.actor_label or "set"),
        kind=OperationKind.SET,
        source_ref=f"set job {job.pk}: {job.summary}"[:200],
    )
    # Checked after the result was read: an operand deleted before that read would have been
    # read as empty; one deleted after it was read as it was.
    wanted = {s.id for s in sources if s.kind == "audience"}
    missing = wanted - set(Audience.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    if missing:
        gone = next(s for s in sources if s.kind == "audience" and s.id in missing)
        raise SetError(f"The audience {gone.label} was deleted before the job ran.")


def _fail(job_id: int, owner: str, message: str) -> None:
    log.warning("set job %s failed: %s", job_id, message)
    SetJob.objects.filter(pk=job_id, lease_owner=owner).update(
        status=JobStatus.FAILED,
        error=message,
        finished_at=timezone.now(),
        lease_owner="",
        lease_expires_at=None,
    )
