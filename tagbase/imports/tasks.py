"""Background tasks for imports (django-tasks, database backend) and the stale-job sweeper.

A task only names the job; the job row's lease decides who runs it, so a task enqueued twice,
or a sweeper re-enqueueing a job whose worker died, never runs the job twice at once.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django_tasks import task

from tagbase.imports.models import RUNNABLE, ImportJob
from tagbase.imports.pipeline import run_import_job


@task()
def run_import_task(job_id: int) -> str:
    job = run_import_job(job_id)
    return job.status if job else "taken by another worker"


def sweep_stale_jobs() -> list[int]:
    """Re-enqueue runnable jobs that no live worker holds: a lease that expired (its worker
    died or lost the database) or a queued job never claimed for a whole lease period.
    Returns the job ids re-enqueued. Safe to run from every worker at once."""
    now = timezone.now()
    lease = timedelta(seconds=settings.TAGBASE_JOB_LEASE_SECONDS)
    stale = ImportJob.objects.filter(status__in=RUNNABLE).filter(
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True, created_at__lt=now - lease)
    )
    ids = list(stale.values_list("pk", flat=True)[:100])
    for job_id in ids:
        run_import_task.enqueue(job_id)
    return ids
