"""Reads of imports: the report (one shape for UI, API and CLI) and lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from tagbase.imports.models import ImportAction, ImportJob


def job_list() -> QuerySet[ImportJob]:
    return ImportJob.objects.select_related("audience", "created_by").order_by("-created_at", "-id")


def job_report(job: ImportJob) -> dict[str, Any]:
    """The import report contract (docs/imports.md): identity, state, progress, counters."""
    report: dict[str, Any] = {
        "job_id": job.pk,
        "status": job.status,
        "stage": job.stage,
        "progress": job.progress_percent,
        "mode": job.mode,
        "action": job.action,
        "identifier_type": job.id_type,
        "audience_id": job.audience_id,
        "audience": job.audience_name or None,
        "dry_run": job.dry_run,
        "file_name": job.file_name,
        "sha256": job.sha256,
        "size_bytes": job.size_bytes,
        "encoding": job.encoding or None,
        "delimiter": job.delimiter or None,
        "has_header": job.has_header,
        "rows_read": job.rows_read,
        "blank": job.blank,
        "invalid": job.invalid,
        "invalid_by_reason": dict(sorted(job.invalid_by_reason.items())),
        "duplicate_in_file": job.duplicate_in_file,
        "not_found": job.not_found,
        "ambiguous": job.ambiguous,
    }
    if job.action == ImportAction.ADD:
        report.update(already_member=job.already_member, added=job.added)
    else:
        report.update(not_member=job.not_member, removed=job.removed)
    report.update(
        audiences_created=list(job.audiences_created),
        rejected_rows=job.rejected_rows,
        error=(
            {
                "code": job.error_code,
                "message": job.error_message,
                "line": job.error_line,
                "offset": job.error_offset,
            }
            if job.error_code
            else None
        ),
        created_by=job.actor_label,
        source=job.source,
        created_at=job.created_at.isoformat() if job.created_at else None,
        finished_at=job.finished_at.isoformat() if job.finished_at else None,
        undone=job.undone_at is not None,
        cancel_requested=job.cancel_requested,
        timings=dict(job.timings),
        # From .all() so that a list that prefetched "targets" makes no query per job.
        operations=sorted(t.operation_id for t in job.targets.all() if t.operation_id),
    )
    return report


def rejects_path(job: ImportJob) -> Path | None:
    if not job.rejects_name or job.files_purged_at:
        return None
    path = Path(settings.TAGBASE_IMPORT_DIR) / job.rejects_name
    return path if path.exists() else None
