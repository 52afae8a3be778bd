"""What the import report page shows, computed from an ``ImportJob``: the status explained, the
counters in the order of the accounting identity, the invalid rows by reason, the outcome bar
and what to do about a refused file. Pure presentation: reads the job, changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from tagbase.imports.models import ImportAction, ImportJob, ImportStatus
from tagbase.imports.reasons import file_reasons, message_for

WORKING = {ImportStatus.QUEUED, ImportStatus.VALIDATING, ImportStatus.APPLYING}
# A queued job that no worker has picked up after this long gets a hint about workers.
QUEUED_HINT_AFTER = timedelta(seconds=10)

STATUS_TEXT = {
    ImportStatus.QUEUED: "Waiting for a worker to start reading the file. Nothing has changed yet.",
    ImportStatus.VALIDATING: "Reading the file and finding the customers. Nothing has changed yet.",
    ImportStatus.PREVIEWED: "Dry run finished: the numbers below are what importing would do "
    "now. Nothing has changed. Press Import to apply them, or Discard.",
    ImportStatus.APPLYING: "Changing the audiences, one recorded operation per audience.",
    ImportStatus.SUCCEEDED: "Every row of the file was applied.",
    ImportStatus.SUCCEEDED_WITH_REJECTIONS: "The file was applied. Some rows were not: they are "
    "counted below and listed in the rejected rows file.",
    ImportStatus.REJECTED: "The file was refused as a whole before anything was applied. "
    "Nothing has changed.",
    ImportStatus.FAILED: "The import stopped on an unexpected error. Nothing of it stays applied.",
    ImportStatus.CANCELLED: "The import was cancelled. Nothing of it stays applied.",
}
STATUS_BADGE = {
    ImportStatus.PREVIEWED: "badge-info",
    ImportStatus.SUCCEEDED: "badge-success",
    ImportStatus.SUCCEEDED_WITH_REJECTIONS: "badge-warning",
    ImportStatus.REJECTED: "badge-error",
    ImportStatus.FAILED: "badge-error",
    ImportStatus.CANCELLED: "",
}
ALERT_LEVEL = {
    ImportStatus.PREVIEWED: "info",
    ImportStatus.SUCCEEDED: "success",
    ImportStatus.SUCCEEDED_WITH_REJECTIONS: "warning",
    ImportStatus.REJECTED: "error",
    ImportStatus.FAILED: "error",
    ImportStatus.CANCELLED: "warning",
}
# What the user can do about a file refused as a whole.
FILE_ADVICE = {
    "EMPTY_FILE": "Check that you chose the right file and that it was saved with its content.",
    "TOO_LARGE": "Split the file into parts, or ask an administrator to raise "
    "TAGBASE_IMPORT_MAX_BYTES.",
    "BINARY_FILE": "Open the workbook in your spreadsheet program, save it as “CSV UTF-8” and "
    "upload that file (not the .xlsx, .xls or .pdf).",
    "ENCODING": "Save the file as “CSV UTF-8”, or choose its encoding under Advanced options.",
    "DELIMITER": "Delete the sep= first line, or make it name ; , or TAB.",
    "UNTERMINATED_QUOTE": "Open the file in a text editor at the line shown and close the "
    "quote, or remove the stray quote character.",
    "NO_DATA_ROWS": "The file holds a header or blank lines only. Export the data rows too.",
    "TOO_MANY_AUDIENCES": "Check that the second column holds audience names, or split the file.",
    "TOO_MANY_NEW_AUDIENCES": "Check that the second column holds audience names, or split the "
    "file, or create the audiences first.",
    "ACTION_COLUMN_IN_SINGLE_MODE": "Import the file again in the mode “Assign each customer the "
    "target audience specified in the file”: each line is identifier; audience name; + or -.",
    "INTERNAL": "Try again. If it happens again, give an administrator the import number.",
}


@dataclass(frozen=True)
class Counter:
    key: str
    label: str
    help: str
    value: int
    color: str


def is_resting(job: ImportJob) -> bool:
    """Nothing runs for this job until someone acts (terminal, or a preview to confirm)."""
    return job.status not in WORKING


# The terms of the accounting identity, in its order: (field, label, meaning, colour); a
# preview words the applied term as PREVIEW_WORDS says. Colours are SVG fills of the chart.
Term = tuple[str, str, str, str]
REJECTION_TERMS: list[Term] = [
    ("blank", "Blank", "Empty lines, skipped", "#cfd6df"),
    ("invalid", "Invalid", "Refused with a reason (below)", "#c9372c"),
    (
        "duplicate_in_file",
        "Duplicates in the file",
        "The same customer appears earlier in the file",
        "#a98bd0",
    ),
    ("not_found", "Not found", "No customer has this identifier", "#e0a526"),
    (
        "ambiguous",
        "Ambiguous",
        "Several customers have this identifier; applied to none",
        "#b85c12",
    ),
]
ADD_TERMS: list[Term] = [
    ("already_member", "Already members", "Were in the audience before; unchanged", "#8da2b8"),
    ("added", "Added", "Became members", "#2e9d57"),
]
REMOVE_TERMS: list[Term] = [
    ("not_member", "Not members", "Were not in the audience; unchanged", "#8da2b8"),
    ("removed", "Removed", "Left the audience", "#2e9d57"),
]
PREVIEW_WORDS = {
    "added": ("Would be added", "Become members"),
    "removed": ("Would be removed", "Leave the audience"),
}


def actions_used(job: ImportJob) -> list[str]:
    """The job's action, and the other one too when some rows of a per-row file asked for it
    (a third column, + / -) and got that far."""
    if job.action == ImportAction.ADD:
        other = job.not_member + job.removed
        return [ImportAction.ADD, ImportAction.REMOVE] if other else [ImportAction.ADD]
    other = job.already_member + job.added
    return [ImportAction.ADD, ImportAction.REMOVE] if other else [ImportAction.REMOVE]


def counters(job: ImportJob) -> list[Counter]:
    """The outcome of every data row, in the order of the accounting identity (the counters of
    an action no row asked for are left out: they are 0)."""
    terms = list(REJECTION_TERMS)
    for action in actions_used(job):
        terms += ADD_TERMS if action == ImportAction.ADD else REMOVE_TERMS
    preview = job.status == ImportStatus.PREVIEWED
    rows = []
    for key, label, meaning, color in terms:
        if preview and key in PREVIEW_WORDS:
            label, meaning = PREVIEW_WORDS[key]
        rows.append(Counter(key, label, meaning, getattr(job, key), color))
    return rows


def identity_holds(job: ImportJob) -> bool:
    return job.rows_read == sum(c.value for c in counters(job))


def shows_identity(job: ImportJob) -> bool:
    """Counters are complete (and add up) once the file is classified; a job refused, failed or
    cancelled part way shows them as far as it got."""
    return job.status == ImportStatus.PREVIEWED or job.is_successful


def invalid_reasons(job: ImportJob) -> list[dict[str, object]]:
    items = sorted(job.invalid_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"code": code, "count": n, "message": message_for(code)} for code, n in items]


def outcome_bar(job: ImportJob, width: float = 1000.0, min_width: float = 6.0) -> list[dict]:  # type: ignore[type-arg]
    """Segments of a horizontal stacked bar (SVG user units of ``width``): the applied outcome
    first, then the identity's other terms backwards; a non-zero one is never thinner than
    ``min_width``, so a single rejected row among millions still shows."""
    parts = [c for c in reversed(counters(job)) if c.value > 0]
    total = sum(c.value for c in parts)
    if not total:
        return []
    raw = [max(min_width, width * c.value / total) for c in parts]
    scale = width / sum(raw)
    segments, x = [], 0.0
    for counter, w in zip(parts, raw, strict=True):
        w *= scale
        segments.append(
            {
                "counter": counter,
                "x": round(x, 2),
                "width": round(w, 2),
                "percent": 100.0 * counter.value / total,
            }
        )
        x += w
    return segments


def status_text(job: ImportJob) -> str:
    text = STATUS_TEXT.get(ImportStatus(job.status), "")
    if job.cancel_requested and not job.is_terminal:
        text = "Cancelling: the worker stops at its next batch and undoes what it applied."
    return text


def waiting_for_worker(job: ImportJob) -> bool:
    return job.status == ImportStatus.QUEUED and timezone.now() - job.created_at > QUEUED_HINT_AFTER


def file_problem(job: ImportJob) -> dict[str, object] | None:
    if not job.error_code:
        return None
    return {
        "code": job.error_code,
        "meaning": file_reasons().get(job.error_code, ""),
        "message": job.error_message,
        "line": job.error_line,
        "offset": job.error_offset,
        "advice": FILE_ADVICE.get(job.error_code, ""),
    }


def duration(job: ImportJob) -> timedelta | None:
    if not job.finished_at:
        return None
    return job.finished_at - (job.started_at or job.created_at)


def changes_text(job: ImportJob, *, preview: bool = False) -> str:
    """``3 added`` / ``1 removed`` / ``3 added, 1 removed`` (``would be …`` for a preview)."""
    parts = []
    for action in actions_used(job):
        n, verb = (job.added, "added") if action == ImportAction.ADD else (job.removed, "removed")
        parts.append(f"{n:,} would be {verb}" if preview else f"{n:,} {verb}")
    return ", ".join(parts)


def finished_message(job: ImportJob) -> tuple[str, str]:
    """(level, text) of the toast shown when a job the user is watching comes to rest."""
    if job.status == ImportStatus.PREVIEWED:
        return "info", f"Preview of import #{job.pk} is ready: {changes_text(job, preview=True)}."
    if job.is_successful:
        rejected = f", {job.rejected_rows:,} rows rejected" if job.rejected_rows else ""
        return "success", f"Import #{job.pk} finished: {changes_text(job)}{rejected}."
    if job.status == ImportStatus.REJECTED:
        return "error", f"Import #{job.pk} was refused: {job.error_message}"
    if job.status == ImportStatus.FAILED:
        return "error", f"Import #{job.pk} failed; nothing of it stays applied."
    return "warning", f"Import #{job.pk} was cancelled; nothing of it stays applied."
