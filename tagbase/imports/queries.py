"""Reads of imports: the report (one shape for UI, API and CLI) and lists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from tagbase.imports.models import ImportAction, ImportJob, ImportTarget


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
        # All four always: a per-row file may add and remove (a third column, + / -).
        "already_member": job.already_member,
        "added": job.added,
        "not_member": job.not_member,
        "removed": job.removed,
    }
    # From .all() so that a list that prefetched "targets" makes no query per job.
    targets = list(job.targets.all())
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
        operations=sorted(t.operation_id for t in targets if t.operation_id),
        audiences=[
            outcome.as_dict()
            for outcome in audience_outcomes(
                sorted(targets, key=lambda t: (t.name, t.key, t.action))
            )
        ],
    )
    return report


@dataclass
class AudienceOutcome:
    """One audience of an import and the split of its rows: what its add rows did (``add``
    target) and what its remove rows did (``remove`` target). A preview's figures say what
    applying would do; then the applied ones."""

    key: str
    name: str
    add: ImportTarget | None = None
    remove: ImportTarget | None = None
    targets: list[ImportTarget] = field(default_factory=list)

    @property
    def audience_id(self) -> int | None:
        return next((t.audience_id for t in self.targets if t.audience_id), None)

    @property
    def audience(self) -> Any:
        """The audience object, when the targets were read with select_related("audience")."""
        return next((t.audience for t in self.targets if t.audience_id), None)

    @property
    def created(self) -> bool:
        return any(t.created_audience for t in self.targets)

    @property
    def added(self) -> int:
        return self.add.changed if self.add else 0

    @property
    def already_member(self) -> int:
        return self.add.unchanged if self.add else 0

    @property
    def removed(self) -> int:
        return self.remove.changed if self.remove else 0

    @property
    def not_member(self) -> int:
        return self.remove.unchanged if self.remove else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "audience_id": self.audience_id,
            "name": self.name,
            "created": self.created,
            "already_member": self.already_member,
            "added": self.added,
            "not_member": self.not_member,
            "removed": self.removed,
            "operations": sorted(t.operation_id for t in self.targets if t.operation_id),
        }


def audience_outcomes(targets: Iterable[ImportTarget]) -> list[AudienceOutcome]:
    """An import's targets grouped by audience (name key), in the order given."""
    by_key: dict[str, AudienceOutcome] = {}
    for target in targets:
        outcome = by_key.setdefault(target.key, AudienceOutcome(target.key, target.name))
        outcome.targets.append(target)
        if target.action == ImportAction.ADD:
            outcome.add = target
        else:
            outcome.remove = target
    return list(by_key.values())


def rejects_path(job: ImportJob) -> Path | None:
    if not job.rejects_name or job.files_purged_at:
        return None
    path = Path(settings.TAGBASE_IMPORT_DIR) / job.rejects_name
    return path if path.exists() else None
