"""Background tasks for set operations (django-tasks, database backend) and the stale-job
sweeper the worker's sweeper thread calls (``web.sweeper``)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django_tasks import task

from tagbase.sets.models import JobStatus, SetJob
from tagbase.sets.pipeline import RUNNABLE, run_set_job


@task()
def run_set_task(job_id: int) -> str:
    job = run_set_job(job_id)
    return job.status if job else "taken by another worker"


def sweep_stale_jobs() -> list[int]:
    """Re-enqueue jobs no live worker holds: an expired lease, or queued for a whole lease
    period without being claimed. Safe from every worker at once."""
    now = timezone.now()
    lease = timedelta(seconds=settings.TAGBASE_JOB_LEASE_SECONDS)
    stale = SetJob.objects.filter(status__in=RUNNABLE).filter(
        Q(lease_expires_at__lt=now)
        | Q(lease_expires_at__isnull=True, status=JobStatus.RUNNING)
        | Q(lease_expires_at__isnull=True, created_at__lt=now - lease)
    )
    ids = list(stale.values_list("pk", flat=True)[:100])
    for job_id in ids:
        run_set_task.enqueue(job_id)
    return ids
