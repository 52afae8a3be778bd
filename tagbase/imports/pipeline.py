"""The worker side of an import: claim the job, then parse → resolve → apply → report.

Every stage can be interrupted at any point (the worker killed, the database restarted) and
taken over by another worker once the lease expires; see ``models`` for why nothing is lost or
applied twice. ``run_import_job`` is what the task queue, the sweeper and the CLI call.
"""

from __future__ import annotations

import csv
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from tagbase.accounts import audit
from tagbase.accounts.actors import Actor
from tagbase.audiences import services as audience_services
from tagbase.audiences.models import Audience, OperationKind
from tagbase.imports import rows as row_rules
from tagbase.imports import staging
from tagbase.imports.models import (
    RUNNABLE,
    ImportAction,
    ImportJob,
    ImportMode,
    ImportStatus,
    ImportTarget,
    RowStatus,
    Stage,
)
from tagbase.lib import csvread
from tagbase.lib.csvsafe import escape_cell

log = logging.getLogger(__name__)

Progress = Callable[[ImportJob], None]


class LeaseLost(Exception):
    """Another worker owns the job now (our lease expired); stop without writing."""


class JobCancelled(Exception):
    """The user asked to cancel; stop at the next safe point."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def import_dir() -> Path:
    path = Path(settings.TAGBASE_IMPORT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- Lease --------------------------------------------------------------------------------


def _lease_until():  # type: ignore[no-untyped-def]
    return timezone.now() + timedelta(seconds=settings.TAGBASE_JOB_LEASE_SECONDS)


def claim_job(job_id: int, owner: str) -> ImportJob | None:
    """Take the job if it is runnable and nobody holds a live lease on it. Exactly one worker
    wins: the conditional UPDATE changes one row or none."""
    now = timezone.now()
    claimable = (
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_owner=owner)
    )
    won = ImportJob.objects.filter(claimable, pk=job_id, status__in=RUNNABLE).update(
        lease_owner=owner,
        lease_expires_at=_lease_until(),
        heartbeat_at=now,
        attempts=F("attempts") + 1,
    )
    if won != 1:
        return None
    job = ImportJob.objects.get(pk=job_id)
    if job.started_at is None:
        ImportJob.objects.filter(pk=job_id).update(started_at=now)
        job.started_at = now
    return job


def _save(job: ImportJob, owner: str, **fields: object) -> None:
    """Write job fields and renew the lease, only while we still own it (inside the caller's
    transaction, so staged rows and counters commit together or not at all)."""
    now = timezone.now()
    fields.update(heartbeat_at=now, lease_expires_at=_lease_until())
    changed = ImportJob.objects.filter(pk=job.pk, lease_owner=owner).update(**fields)
    if changed != 1:
        raise LeaseLost(f"import {job.pk}: lease lost")
    for name, value in fields.items():
        if not hasattr(value, "resolve_expression"):
            setattr(job, name, value)


def _release(job_id: int, owner: str) -> None:
    ImportJob.objects.filter(pk=job_id, lease_owner=owner).update(
        lease_owner="", lease_expires_at=None
    )


def _check_cancel(job: ImportJob) -> None:
    if ImportJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
        raise JobCancelled()


# --- Entry point ----------------------------------------------------------------------------


def run_import_job(
    job_id: int, *, owner: str | None = None, progress: Progress | None = None, retries: int = 5
) -> ImportJob | None:
    """Run a job to its next resting state (terminal or previewed). Returns None when another
    worker holds it. Safe to call any number of times, from any number of workers. A database
    error (a restart, a dropped connection) is retried with back-off from the last checkpoint."""
    owner = owner or worker_id()
    for attempt in range(retries + 1):
        try:
            return _run_once(job_id, owner, progress)
        except DatabaseError:
            if attempt == retries:
                raise
            connections.close_all()
            time.sleep(min(2**attempt, 15))
    return None


def _run_once(job_id: int, owner: str, progress: Progress | None) -> ImportJob | None:
    job = claim_job(job_id, owner)
    if job is None:
        return None
    try:
        _run_stages(job, owner, progress)
    except LeaseLost:
        log.warning("import %s: lease lost, leaving it to the new owner", job_id)
        return ImportJob.objects.get(pk=job_id)
    except JobCancelled:
        _finish_cancel(job, owner)
    except csvread.FileRejected as exc:
        _reject(job, owner, exc.code, exc.message, exc.line, exc.offset)
    except DatabaseError:
        # The database went away or refused: keep the job runnable and let the lease expire;
        # a retry (this worker's sweeper or another worker) resumes from the checkpoint.
        log.exception("import %s: database error; will be retried", job_id)
        raise
    except Exception as exc:
        log.exception("import %s failed", job_id)
        _fail(job, owner, exc)
    else:
        _release(job_id, owner)
    return ImportJob.objects.get(pk=job_id)


def _run_stages(job: ImportJob, owner: str, progress: Progress | None) -> None:
    if job.stage == Stage.PARSE:
        _check_cancel(job)
        with _timed(job, "parse"):
            parse_file(job, owner, progress)
    if job.stage == Stage.RESOLVE:
        _check_cancel(job)
        with _timed(job, "resolve"):
            resolve(job, owner)
        if progress:
            progress(job)
        if job.status == ImportStatus.PREVIEWED or job.is_terminal:
            return
    if job.stage == Stage.APPLY:
        with _timed(job, "apply"):
            apply(job, owner, progress)
    if job.stage == Stage.REPORT:
        with _timed(job, "report"):
            report(job, owner)
    if progress:
        progress(job)


@contextmanager
def _timed(job: ImportJob, stage: str) -> Iterator[None]:
    """Add the seconds spent in a stage to job.timings (kept across resumptions)."""
    started = time.monotonic()
    try:
        yield
    finally:
        spent = round(time.monotonic() - started, 3)
        timings = dict(ImportJob.objects.filter(pk=job.pk).values_list("timings", flat=True)[0])
        timings[stage] = round(timings.get(stage, 0) + spent, 3)
        ImportJob.objects.filter(pk=job.pk).update(timings=timings)
        job.timings = timings


# --- Stage 1: parse -------------------------------------------------------------------------


def parse_file(job: ImportJob, owner: str, progress: Progress | None = None) -> None:
    path = import_dir() / job.stored_name
    dialect = csvread.sniff(
        path, encoding=job.encoding_requested, delimiter=job.delimiter_requested
    )
    with transaction.atomic():
        _save(
            job,
            owner,
            status=ImportStatus.VALIDATING,
            encoding=dialect.encoding_label,
            delimiter=_delimiter_label(dialect.delimiter),
        )
    targets = _Targets(job)
    parse = row_rules.parse_single if job.mode == ImportMode.SINGLE else row_rules.parse_per_row
    region = settings.TAGBASE_DEFAULT_PHONE_REGION
    batch: list[tuple] = []  # type: ignore[type-arg]
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    seen_first = job.checkpoint_line > 0 or job.rows_read > 0 or job.has_header
    last_line = job.checkpoint_line
    bytes_done = [job.bytes_done]

    def on_bytes(n: int) -> None:
        bytes_done[0] = n

    records = csvread.read_records(
        path,
        dialect,
        max_line_bytes=settings.TAGBASE_IMPORT_MAX_LINE_BYTES,
        skip_until_line=job.checkpoint_line,
        progress=on_bytes,
    )
    fast = row_rules.fast_single(job.id_type) if job.mode == ImportMode.SINGLE else None
    as_id = job.id_type == "sc_id"
    job_pk = job.pk
    batch_rows = settings.TAGBASE_IMPORT_BATCH_ROWS  # not per row: settings are a lazy object
    for record in records:
        last_line = record.line
        if record.blank:
            counts["blank"] += 1
            counts["rows_read"] += 1
        elif not seen_first and row_rules.looks_like_header(record.fields):
            seen_first = True
            counts["header"] += 1
        elif fast is not None and record.issue is None and (value := fast(record.fields)):
            seen_first = True
            counts["rows_read"] += 1
            batch.append(
                (
                    job_pk,
                    record.line,
                    "ok",
                    "",
                    value,
                    None,
                    "",
                    int(value) if as_id else None,
                    None,
                )
            )
        else:
            seen_first = True
            counts["rows_read"] += 1
            staged = _stage_row(job, record, parse, region, reasons, targets)
            if staged is None:
                counts["blank"] += 1
            else:
                batch.append(staged)
        if len(batch) >= batch_rows:
            _commit_batch(job, owner, batch, counts, reasons, targets, last_line, bytes_done[0])
            batch, counts, reasons = [], Counter(), Counter()
            _check_cancel(job)
            if progress:
                progress(job)
    _commit_batch(job, owner, batch, counts, reasons, targets, last_line, job.size_bytes, done=True)
    if job.rows_read == job.blank:
        raise csvread.FileRejected(
            "NO_DATA_ROWS",
            "The file has no data rows (it is empty, blank or only a header line).",
            line=None,
            offset=None,
        )


class _Targets:
    """The targets a per-row file names while it is read: each audience name (its first
    spelling) and each (name key, action) pair, with the pairs not yet stored. Starts from the
    stored ones, so a resumed job continues where it left off."""

    def __init__(self, job: ImportJob) -> None:
        self.default_sign = _job_sign(job)
        self.names: dict[str, str] = {}
        self.pairs: set[tuple[str, str]] = set()
        for target in ImportTarget.objects.filter(job=job):
            self.names.setdefault(target.key, target.name)
            self.pairs.add((target.key, target.action))
        self.new: dict[tuple[str, str], str] = {}

    def see(self, parsed: row_rules.Parsed, line: int) -> None:
        key = parsed.target_key
        action = (
            ImportAction.ADD if (parsed.sign or self.default_sign) == "+" else ImportAction.REMOVE
        )
        if (key, action) in self.pairs:
            return
        if key not in self.names:
            if len(self.names) >= settings.TAGBASE_IMPORT_MAX_AUDIENCES_PER_FILE:
                raise csvread.FileRejected(
                    "TOO_MANY_AUDIENCES",
                    f"The file names more than {settings.TAGBASE_IMPORT_MAX_AUDIENCES_PER_FILE} "
                    "different audiences (TAGBASE_IMPORT_MAX_AUDIENCES_PER_FILE).",
                    line=line,
                    offset=None,
                )
            self.names[key] = parsed.target_name
        self.pairs.add((key, action))
        self.new[(key, action)] = self.names[key]

    def take_new(self) -> list[ImportTarget]:
        new, self.new = self.new, {}
        return [ImportTarget(key=k, action=a, name=n) for (k, a), n in new.items()]


def _job_sign(job: ImportJob) -> str:
    return "+" if job.action == ImportAction.ADD else "-"


def _stage_row(job, record, parse, region, reasons, targets) -> tuple | None:  # type: ignore[no-untyped-def, type-arg]
    if record.issue:
        reasons[record.issue] += 1
        return (
            job.pk,
            record.line,
            RowStatus.INVALID,
            record.issue,
            None,
            record.text,
            "",
            None,
            None,
        )
    parsed = parse(record.fields, job.id_type, region)
    if parsed.kind == "blank":
        return None
    if parsed.kind == "single_mode_sign":
        raise csvread.FileRejected(
            "ACTION_COLUMN_IN_SINGLE_MODE",
            f"Line {record.line}, column {parsed.column} holds an add/remove sign "
            f"({parsed.sign}): mode single reads one column of identifiers. Import this file "
            "in per-row mode (identifier; audience name; + or -).",
            line=record.line,
            offset=None,
        )
    if parsed.kind == "invalid":
        reasons[parsed.reason] += 1
        return (
            job.pk,
            record.line,
            RowStatus.INVALID,
            parsed.reason,
            None,
            record.text,
            "",
            None,
            None,
        )
    key = parsed.target_key
    if job.mode == ImportMode.PER_ROW:
        targets.see(parsed, record.line)
    customer_id = int(parsed.value) if job.id_type == "sc_id" else None  # type: ignore[arg-type]
    raw = None if record.text == parsed.value else record.text
    return (
        job.pk,
        record.line,
        RowStatus.CANDIDATE,
        "",
        parsed.value,
        raw,
        key,
        customer_id,
        parsed.sign,
    )


def _commit_batch(
    job, owner, batch, counts, reasons, targets, last_line, bytes_done, done=False
) -> None:  # type: ignore[no-untyped-def]
    with transaction.atomic():
        staging.insert_rows(batch)
        new_targets = targets.take_new()
        if new_targets:
            for target in new_targets:
                target.job = job
            ImportTarget.objects.bulk_create(new_targets)
        merged = Counter(job.invalid_by_reason) + reasons
        fields: dict[str, object] = {
            "rows_read": F("rows_read") + counts["rows_read"],
            "blank": F("blank") + counts["blank"],
            "invalid": F("invalid") + sum(reasons.values()),
            "invalid_by_reason": dict(merged),
            "checkpoint_line": last_line,
            "bytes_done": bytes_done,
        }
        if counts["header"]:
            fields["has_header"] = True
        if done:
            fields["stage"] = Stage.RESOLVE
        _save(job, owner, **fields)
    job.refresh_from_db()


def _delimiter_label(delimiter: str) -> str:
    return {"\t": "tab", ";": ";", ",": ","}.get(delimiter, delimiter)


# --- Stage 2: resolve -----------------------------------------------------------------------


def resolve(job: ImportJob, owner: str) -> None:
    """Duplicates, customers, audiences: all set-based, in one transaction (so a re-run after
    a crash starts from the same staged rows)."""
    with transaction.atomic():
        staging.resolve_customers(job.pk, job.id_type)
        conflicts = _mark_conflicts(job)
        _mark_duplicates(job)
        staging.classify_unresolved(job.pk)
        _ensure_single_target(job)
        _match_targets(job)
        new_names = {
            t.key for t in job.targets.all() if t.action == ImportAction.ADD and not t.audience_id
        }
        if len(new_names) > settings.TAGBASE_IMPORT_MAX_NEW_AUDIENCES:
            raise csvread.FileRejected(
                "TOO_MANY_NEW_AUDIENCES",
                f"The file would create {len(new_names)} new audiences; the limit is "
                f"{settings.TAGBASE_IMPORT_MAX_NEW_AUDIENCES} (TAGBASE_IMPORT_MAX_NEW_AUDIENCES).",
                line=None,
                offset=None,
            )
        by_status = staging.count_by_status(job.pk)
        fields: dict[str, object] = {
            "duplicate_in_file": by_status.get(RowStatus.DUPLICATE, 0),
            "not_found": by_status.get(RowStatus.NOT_FOUND, 0),
            "ambiguous": by_status.get(RowStatus.AMBIGUOUS, 0),
        }
        if conflicts:
            # Rows refused for what the whole file says, not for what they say alone: counted
            # as invalid (with their reason) here, after every row has been read.
            by_reason = Counter(job.invalid_by_reason)
            by_reason["conflicting_action"] += conflicts
            fields.update(invalid=job.invalid + conflicts, invalid_by_reason=dict(by_reason))
        if job.dry_run:
            fields.update(_preview_counts(job))
            fields.update(status=ImportStatus.PREVIEWED, stage=Stage.APPLY)
            fields["rejects_name"] = _write_rejects(job)
        else:
            fields.update(status=ImportStatus.APPLYING, stage=Stage.APPLY)
        _save(job, owner, **fields)


def _mark_conflicts(job: ImportJob) -> int:
    """Per-row files that both add to and remove from an audience: the rows of a customer the
    file adds and removes there are refused (``staging.mark_conflicts``). Files where no
    audience has both actions skip the query."""
    if job.mode != ImportMode.PER_ROW:
        return 0
    actions: dict[str, set[str]] = {}
    for key, action in job.targets.values_list("key", "action"):
        actions.setdefault(key, set()).add(action)
    if all(len(both) < 2 for both in actions.values()):
        return 0
    return staging.mark_conflicts(job.pk, _job_sign(job))


def _mark_duplicates(job: ImportJob) -> None:
    """A row repeating an earlier row's customer (same identifier, or for cards another card of
    the same customer) or, unresolved, its identifier is ``dup``; the first occurrence counts.

    Mode single dedupes resolved rows in one pass over them in file order with a bitmap of
    customer ids (1 bit per id: 1.25 MB for 10 million customers) instead of sorting the whole
    file in SQL, which costs seconds per million rows on SQLite. Per-row mode keys by
    (audience, customer) and stays in SQL."""
    if job.mode == ImportMode.PER_ROW:
        staging.mark_duplicates(job.pk, "customer_id")
        staging.mark_duplicates(job.pk, "value", unresolved_only=True)
        return
    seen = bytearray(staging.max_resolved_customer(job.pk) // 8 + 1)
    duplicates: list[int] = []
    for rows in staging.resolved_rows(job.pk):
        for line, customer_id in rows:
            byte, bit = customer_id >> 3, 1 << (customer_id & 7)
            if seen[byte] & bit:
                duplicates.append(line)
            else:
                seen[byte] |= bit
    staging.mark_lines(job.pk, duplicates, "dup")
    staging.mark_duplicates(job.pk, "value", unresolved_only=True)


def _ensure_single_target(job: ImportJob) -> None:
    if job.mode != ImportMode.SINGLE:
        return
    ImportTarget.objects.get_or_create(
        job=job,
        key="",
        action=job.action,
        defaults={"name": job.audience_name, "audience_id": job.audience_id},
    )


def _match_targets(job: ImportJob) -> None:
    """Point each target at its existing audience (by name key), if there is one."""
    for target in job.targets.filter(audience__isnull=True):
        if job.mode == ImportMode.SINGLE:
            audience = (
                Audience.objects.filter(pk=job.audience_id).first() if job.audience_id else None
            )
            audience = audience or Audience.objects.filter(name_key=_key(job.audience_name)).first()
        else:
            audience = Audience.objects.filter(name_key=target.key).first()
        if audience:
            target.audience = audience
            target.save(update_fields=["audience"])


def _key(name: str) -> str:
    from tagbase.lib.names import audience_name_key

    return audience_name_key(name) if name else ""


def _signs(job: ImportJob, target: ImportTarget) -> staging.Signs:
    """Which staged rows are this target's: all of its audience's (mode single), or those
    whose action — their own, or the job's — is the target's."""
    return None if job.mode == ImportMode.SINGLE else (target.sign, _job_sign(job))


def _preview_counts(job: ImportJob) -> dict[str, object]:
    """What applying would do now: per target, candidates split into members / not members
    (stored on the target for the per-audience report), and the job's totals."""
    totals: Counter[str] = Counter()
    would_create = []
    targets = list(job.targets.order_by("key", "action"))
    for target in targets:
        signs = _signs(job, target)
        n = staging.count_candidates(job.pk, target.key, signs)
        m = (
            staging.count_members_among_candidates(job.pk, target.key, target.audience_id, signs)
            if target.audience_id
            else 0
        )
        if target.action == ImportAction.ADD:
            target.changed, target.unchanged = n - m, m
            totals.update(added=n - m, already_member=m)
            if target.audience_id is None and n:
                would_create.append(target.name)
        else:
            target.changed, target.unchanged = m, n - m
            totals.update(removed=m, not_member=n - m)
    ImportTarget.objects.bulk_update(targets, ["changed", "unchanged"], batch_size=1000)
    return {
        "already_member": totals["already_member"],
        "added": totals["added"],
        "removed": totals["removed"],
        "not_member": totals["not_member"],
        "audiences_created": would_create,
    }


# --- Stage 3: apply -------------------------------------------------------------------------


def apply(job: ImportJob, owner: str, progress: Progress | None = None) -> None:
    """One operation per target through the audiences write path; each target's operation is
    recorded in the same transaction as the change, so a resumed job skips finished targets."""
    actor = _actor(job)
    for target in job.targets.filter(operation__isnull=True).order_by("key", "action"):
        _check_cancel(job)
        with transaction.atomic():
            ImportJob.objects.select_for_update().filter(pk=job.pk).first()
            _apply_target(job, target, actor)
            _save(job, owner, status=ImportStatus.APPLYING)
        if progress:
            progress(job)
    with transaction.atomic():
        _save(job, owner, stage=Stage.REPORT)


def _apply_target(job: ImportJob, target: ImportTarget, actor: Actor) -> None:
    signs = _signs(job, target)
    candidates = staging.count_candidates(job.pk, target.key, signs)
    if target.audience_id is None:
        if target.action == ImportAction.REMOVE or not candidates:
            # Nothing to remove from a missing audience (its rows count as not members: see
            # ``report``); nothing to create empty. A per-row file's add rows may create the
            # audience meanwhile: its remove rows still count as not members, as previewed.
            return
        audience, created = audience_services.get_or_create_audience(
            target.name or job.audience_name, actor=actor
        )
        target.audience = audience
        target.created_audience = created
        if job.mode == ImportMode.SINGLE:
            ImportJob.objects.filter(pk=job.pk).update(audience=audience)
            job.audience = audience
    sql, params = staging.candidates_sql(job.pk, target.key, signs)
    # Duplicates and conflicts were marked in the resolve stage: each candidate is a different
    # customer, and no customer is both added to and removed from one audience.
    selection = audience_services.CustomerSelection(sql, params, distinct=True)
    change = (
        audience_services.add_customers_to_audience
        if target.action == ImportAction.ADD
        else audience_services.remove_customers_from_audience
    )
    assert target.audience_id is not None  # set above, or the target had its audience already
    op = change(
        target.audience_id,
        selection,
        actor=actor,
        kind=OperationKind.IMPORT,
        source_ref=f"import:{job.pk}",
    )
    target.operation = op
    if target.action == ImportAction.ADD:
        target.changed, target.unchanged = op.added, op.already_member
    else:
        target.changed, target.unchanged = op.removed, op.not_member
    target.save(update_fields=["audience", "created_audience", "operation", "changed", "unchanged"])


def _actor(job: ImportJob) -> Actor:
    if job.created_by is not None:
        return Actor(user=job.created_by, label=job.actor_label or job.created_by.get_username())
    return Actor.system(job.actor_label or f"import:{job.pk}")


# --- Stage 4: report ------------------------------------------------------------------------


def report(job: ImportJob, owner: str) -> None:
    with transaction.atomic():
        totals: Counter[str] = Counter()
        created = []
        for target in job.targets.select_related("operation"):
            op = target.operation
            if op is not None:
                totals.update(
                    added=op.added,
                    already_member=op.already_member,
                    removed=op.removed,
                    not_member=op.not_member,
                    vanished=op.not_found,
                )
            elif target.action == ImportAction.REMOVE:
                # The audience did not exist when the file was resolved: none were members.
                n = staging.count_candidates(job.pk, target.key, _signs(job, target))
                totals["not_member"] += n
                if (target.changed, target.unchanged) != (0, n):
                    ImportTarget.objects.filter(pk=target.pk).update(changed=0, unchanged=n)
            if target.created_audience:
                created.append(target.name)
        rejects = _write_rejects(job)
        rejected = job.invalid + job.duplicate_in_file + job.not_found + job.ambiguous
        status = (
            ImportStatus.SUCCEEDED_WITH_REJECTIONS
            if rejected or totals["vanished"]
            else ImportStatus.SUCCEEDED
        )
        staging.delete_rows(job.pk)
        _save(
            job,
            owner,
            added=totals["added"],
            already_member=totals["already_member"],
            removed=totals["removed"],
            not_member=totals["not_member"],
            not_found=job.not_found + totals["vanished"],
            audiences_created=created,
            rejects_name=rejects,
            status=status,
            stage=Stage.DONE,
            finished_at=timezone.now(),
        )
        summary = {
            "status": status,
            "rows_read": job.rows_read,
            "added": totals["added"],
            "removed": totals["removed"],
            "rejected": rejected,
            "audiences_created": len(created),
        }
        audit.record(_actor(job), "import.applied", "import", job.pk, summary)


REJECT_MESSAGES = {
    RowStatus.DUPLICATE: "The same customer appears earlier in the file.",
    RowStatus.NOT_FOUND: "No customer has this identifier.",
    RowStatus.AMBIGUOUS: "Several customers have this identifier; it was not applied to any.",
}
REJECT_CODES = {
    RowStatus.DUPLICATE: "duplicate_in_file",
    RowStatus.NOT_FOUND: "not_found",
    RowStatus.AMBIGUOUS: "ambiguous",
}


def _write_rejects(job: ImportJob) -> str:
    """The rejected-rows CSV (line, raw_value, reason_code, message), formula-escaped.
    Written to a temporary name and renamed, so a reader never sees half a file."""
    from tagbase.imports.reasons import message_for

    name = f"{job.stored_name}.rejects.csv"
    path = import_dir() / name
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["line", "raw_value", "reason_code", "message"])
        for line, raw, value, status, reason in staging.rejected_rows(job.pk):
            code = reason if status == RowStatus.INVALID else REJECT_CODES.get(status, status)
            message = message_for(code) if status == RowStatus.INVALID else REJECT_MESSAGES[status]
            shown = raw if raw is not None else (value or "")
            writer.writerow([line, escape_cell(shown), code, message])
    tmp.replace(path)
    return name


# --- Ends -----------------------------------------------------------------------------------


def _reject(job: ImportJob, owner: str, code: str, message: str, line, offset) -> None:  # type: ignore[no-untyped-def]
    with transaction.atomic():
        staging.delete_rows(job.pk)
        _save(
            job,
            owner,
            status=ImportStatus.REJECTED,
            stage=Stage.DONE,
            error_code=code,
            error_message=message,
            error_line=line,
            error_offset=offset,
            finished_at=timezone.now(),
            lease_owner="",
        )


def _fail(job: ImportJob, owner: str, exc: Exception) -> None:
    try:
        with transaction.atomic():
            _undo_applied(job)
            staging.delete_rows(job.pk)
            _save(
                job,
                owner,
                status=ImportStatus.FAILED,
                stage=Stage.DONE,
                error_code="INTERNAL",
                error_message=f"{exc.__class__.__name__}: the import "
                "stopped on an unexpected error; nothing of it stays applied.",
                finished_at=timezone.now(),
                lease_owner="",
            )
    except LeaseLost:
        pass


def _finish_cancel(job: ImportJob, owner: str) -> None:
    with transaction.atomic():
        _undo_applied(job)
        staging.delete_rows(job.pk)
        _save(
            job,
            owner,
            status=ImportStatus.CANCELLED,
            stage=Stage.DONE,
            finished_at=timezone.now(),
            lease_owner="",
        )


def _undo_applied(job: ImportJob) -> None:
    """Undo the operations this job already applied (cancel during apply, or a failure)."""
    actor = _actor(job)
    for target in job.targets.select_related("operation").filter(operation__isnull=False):
        op = target.operation
        if op is not None and op.can_undo:
            audience_services.undo_operation(op, actor=actor)
