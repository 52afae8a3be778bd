"""Background tasks for audiences (django-tasks, database backend): scheduled exports."""

from __future__ import annotations

from datetime import datetime

from django_tasks import task

from tagbase.audiences import exports


@task()
def run_export_task(schedule_id: int) -> str:
    schedule = exports.run_scheduled_export(schedule_id)
    if schedule is None:
        return "schedule gone"
    return "failed" if schedule.last_error else f"{schedule.last_rows} rows"


def enqueue_due_exports(now: datetime | None = None) -> list[int]:
    """Claim the scheduled exports that are due (one worker wins each) and queue their runs.
    Called by every worker's sweeper; returns the schedules claimed."""
    claimed = exports.claim_due_schedules(now)
    for schedule_id in claimed:
        run_export_task.enqueue(schedule_id)
    return claimed
