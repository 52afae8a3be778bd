"""Every write use case of imports: start, commit a preview, cancel, undo, purge old files.

The work itself runs in ``pipeline`` (in a worker, or in-process for the CLI). These services
validate the request, store the upload, create or change the ``ImportJob`` row and enqueue the
worker task on commit, so the request returns at once.
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from tagbase.accounts import audit
from tagbase.accounts.actors import Actor
from tagbase.audiences import services as audience_services
from tagbase.audiences.models import Audience
from tagbase.customers.erasure import ErasedCustomer
from tagbase.imports import erasure
from tagbase.imports.erasure import FoundRecords
from tagbase.imports.models import (
    TERMINAL,
    ImportAction,
    ImportJob,
    ImportMode,
    ImportStatus,
    Stage,
)
from tagbase.imports.pipeline import import_dir
from tagbase.lib import csvread
from tagbase.lib.identifiers import parse_id_type
from tagbase.lib.names import InvalidName, audience_name_key, clean_audience_name

ENCODINGS = ("auto", "utf-8", "cp1251", "utf-16")
DELIMITERS = {
    "auto": "auto",
    ";": ";",
    ",": ",",
    "tab": "\t",
    "\t": "\t",
    "semicolon": ";",
    "comma": ",",
}


class ImportError_(Exception):
    """A request to import was refused; ``code`` is stable, ``field`` names the input."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class UploadTooLarge(ImportError_):
    pass


@dataclass(frozen=True)
class ImportRequest:
    """What the user asked for, before anything is stored."""

    mode: str = ImportMode.SINGLE
    action: str = ImportAction.ADD
    id_type: str = "sc_id"
    audience_id: int | None = None
    audience_name: str = ""
    dry_run: bool = False
    encoding: str = "auto"
    delimiter: str = "auto"


def validate_request(req: ImportRequest) -> ImportRequest:
    """Check options and resolve the target of mode single; raise ImportError_ naming the field."""
    if req.mode not in ImportMode.values:
        raise ImportError_(
            "invalid_mode", f"Unknown mode {req.mode!r}; use single or per_row.", "mode"
        )
    if req.action not in ImportAction.values:
        raise ImportError_(
            "invalid_action", f"Unknown action {req.action!r}; use add or remove.", "action"
        )
    try:
        id_type = parse_id_type(req.id_type)
    except ValueError as exc:
        raise ImportError_("invalid_id_type", str(exc), "id_type") from None
    if req.encoding not in ENCODINGS:
        raise ImportError_(
            "invalid_encoding",
            f"Unknown encoding {req.encoding!r}; use one of {', '.join(ENCODINGS)}.",
            "encoding",
        )
    if req.delimiter not in DELIMITERS:
        raise ImportError_(
            "invalid_delimiter",
            f"Unknown delimiter {req.delimiter!r}; use auto, ';', ',' or tab.",
            "delimiter",
        )
    audience_id, name = req.audience_id, req.audience_name.strip()
    if req.mode == ImportMode.SINGLE:
        audience_id, name = _single_target(req, audience_id, name)
    else:
        audience_id, name = None, ""
    return ImportRequest(
        mode=req.mode,
        action=req.action,
        id_type=str(id_type),
        audience_id=audience_id,
        audience_name=name,
        dry_run=req.dry_run,
        encoding=req.encoding,
        delimiter=DELIMITERS[req.delimiter],
    )


def _single_target(
    req: ImportRequest, audience_id: int | None, name: str
) -> tuple[int | None, str]:
    if audience_id is not None:
        audience = Audience.objects.filter(pk=audience_id).first()
        if audience is None:
            raise ImportError_(
                "audience_not_found", f"Audience {audience_id} does not exist.", "audience"
            )
        return audience.pk, audience.name
    if not name:
        raise ImportError_(
            "audience_required", "Choose an audience or type the name of a new one.", "audience"
        )
    try:
        name = clean_audience_name(name)
    except InvalidName as exc:
        raise ImportError_(exc.code, exc.message, "audience") from None
    existing = Audience.objects.filter(name_key=audience_name_key(name)).first()
    if existing:
        return existing.pk, existing.name
    if req.action == ImportAction.REMOVE:
        raise ImportError_(
            "audience_not_found",
            f"There is no audience named {name!r} to remove customers from.",
            "audience",
        )
    return None, name


def store_upload(chunks: Iterable[bytes]) -> tuple[str, str, int]:
    """Stream an upload to a generated name under the import dir, hashing as it goes.
    Refuses (and deletes the partial file) as soon as it passes the size limit."""
    limit = settings.TAGBASE_IMPORT_MAX_BYTES
    name = f"{uuid.uuid4().hex}.csv"
    path = import_dir() / name
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("wb") as fh:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(
                        "TOO_LARGE",
                        f"The file is larger than the limit of {limit:,} bytes "
                        "(TAGBASE_IMPORT_MAX_BYTES).",
                        "file",
                    )
                digest.update(chunk)
                fh.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return name, digest.hexdigest(), size


def display_file_name(name: str) -> str:
    """The uploaded name for display only: no path, no control or bidi characters, ≤ 255."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(
        ch
        for ch in unicodedata.normalize("NFC", base)
        if unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co"}
    ).strip()
    return (cleaned or "upload.csv")[:255]


class IdempotencyConflict(ImportError_):
    """The same Idempotency-Key was used with another request, or its first use is running."""


def start_import(
    chunks: Iterable[bytes],
    file_name: str,
    request: ImportRequest,
    *,
    actor: Actor,
    source: str = "ui",
    enqueue: bool = True,
    idempotency_key: str = "",
) -> ImportJob:
    """Validate, store the file, create a queued job and (on commit) hand it to a worker.

    With an ``idempotency_key`` (scoped to the actor) a repeat of the same request — same file
    bytes and options — returns the first job instead of starting another; the same key with a
    different request raises ``IdempotencyConflict`` (code ``idempotency_key_reused``)."""
    req = validate_request(request)
    stored, sha256, size = store_upload(chunks)
    fingerprint = _fingerprint(req, sha256) if idempotency_key else ""
    try:
        if idempotency_key:
            replay = _replay(actor, idempotency_key, fingerprint)
            if replay is not None:
                (import_dir() / stored).unlink(missing_ok=True)
                return replay
        with transaction.atomic():
            job = ImportJob.objects.create(
                mode=req.mode,
                action=req.action,
                id_type=req.id_type,
                audience_id=req.audience_id,
                audience_name=req.audience_name,
                dry_run=req.dry_run,
                file_name=display_file_name(file_name),
                stored_name=stored,
                sha256=sha256,
                size_bytes=size,
                encoding_requested=req.encoding,
                delimiter_requested="tab" if req.delimiter == "\t" else req.delimiter,
                created_by=actor.user,
                actor_label=actor.label[:150],
                source=source,
                idempotency_key=idempotency_key[:200],
                request_fingerprint=fingerprint,
            )
            audit.record(actor, "import.started", "import", job.pk, _started_summary(job))
            if enqueue:
                transaction.on_commit(lambda: enqueue_job(job.pk))
    except IntegrityError:
        (import_dir() / stored).unlink(missing_ok=True)
        raise IdempotencyConflict(
            "idempotency_key_in_use",
            "A request with this Idempotency-Key is being processed; retry later.",
            "Idempotency-Key",
        ) from None
    except BaseException:
        (import_dir() / stored).unlink(missing_ok=True)
        raise
    return job


def _started_summary(job: ImportJob) -> dict[str, object]:
    """What the log keeps of a new import: its options and size — not the file's name (people
    name files after people) and nothing of its contents."""
    return {
        "mode": job.mode,
        "action": job.action,
        "id_type": job.id_type,
        "audience_id": job.audience_id,
        "name": job.audience_name or None,
        "dry_run": job.dry_run,
        "size_bytes": job.size_bytes,
        "source": job.source,
    }


def _fingerprint(req: ImportRequest, sha256: str) -> str:
    parts = [
        sha256,
        req.mode,
        req.action,
        req.id_type,
        str(req.audience_id),
        req.audience_name,
        str(req.dry_run),
        req.encoding,
        req.delimiter,
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _replay(actor: Actor, key: str, fingerprint: str) -> ImportJob | None:
    first = ImportJob.objects.filter(actor_label=actor.label[:150], idempotency_key=key).first()
    if first is None:
        return None
    if first.request_fingerprint != fingerprint:
        raise IdempotencyConflict(
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different file or options.",
            "Idempotency-Key",
        )
    return first


def enqueue_job(job_id: int) -> None:
    from tagbase.imports.tasks import run_import_task

    run_import_task.enqueue(job_id)


def commit_import(job: ImportJob, *, actor: Actor, enqueue: bool = True) -> ImportJob:
    """Apply a previewed (dry-run) job. Refused unless the job is ``previewed``."""
    with transaction.atomic():
        changed = ImportJob.objects.filter(pk=job.pk, status=ImportStatus.PREVIEWED).update(
            status=ImportStatus.APPLYING,
            dry_run=False,
            stage=Stage.APPLY,
            lease_owner="",
            lease_expires_at=None,
        )
        if changed != 1:
            job.refresh_from_db()
            raise ImportError_(
                "not_previewed",
                f"Import {job.pk} is {job.status}; only a previewed import can be committed.",
            )
        audit.record(actor, "import.committed", "import", job.pk)
        if enqueue:
            transaction.on_commit(lambda: enqueue_job(job.pk))
    job.refresh_from_db()
    return job


def cancel_import(job: ImportJob, *, actor: Actor) -> ImportJob:
    """Stop a job. Not yet applying: it ends ``cancelled`` now (or at the worker's next batch).
    Applying: the worker stops before the next audience and undoes what it applied.
    Idempotent for a cancelled job; refused for other finished jobs (use undo)."""
    from tagbase.imports import staging

    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        if locked.status == ImportStatus.CANCELLED:
            return locked
        if locked.status in TERMINAL:
            raise ImportError_(
                "already_finished",
                f"Import {job.pk} has already finished ({locked.status}); undo it instead.",
            )
        locked.cancel_requested = True
        fields = ["cancel_requested"]
        if locked.status in {ImportStatus.QUEUED, ImportStatus.PREVIEWED} and not _lease_live(
            locked
        ):
            staging.delete_rows(locked.pk)
            locked.status, locked.stage, locked.finished_at = (
                ImportStatus.CANCELLED,
                Stage.DONE,
                timezone.now(),
            )
            fields += ["status", "stage", "finished_at"]
        locked.save(update_fields=fields)
        audit.record(actor, "import.cancelled", "import", locked.pk, {"status": locked.status})
    return locked


def _lease_live(job: ImportJob) -> bool:
    return bool(job.lease_expires_at and job.lease_expires_at > timezone.now())


def undo_import(job: ImportJob, *, actor: Actor) -> ImportJob:
    """Undo every operation a finished import applied (members it added leave, members it
    removed come back). Once only."""
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        if not locked.is_successful:
            raise ImportError_(
                "cannot_undo",
                f"Import {job.pk} is {locked.status}; only a finished import can be undone.",
            )
        if locked.undone_at:
            raise ImportError_("cannot_undo", f"Import {job.pk} has already been undone.")
        undone = 0
        for target in locked.targets.select_related("operation").filter(operation__isnull=False):
            if target.operation and target.operation.can_undo:
                audience_services.undo_operation(target.operation, actor=actor)
                undone += 1
        locked.undone_at = timezone.now()
        locked.save(update_fields=["undone_at"])
        audit.record(actor, "import.undone", "import", locked.pk, {"operations": undone})
    return locked


def purge_expired_files(*, now=None) -> int:  # type: ignore[no-untyped-def]
    """Delete stored uploads and reports of jobs finished more than the retention ago (the job
    row and its counters stay). Returns the number of jobs purged. Idempotent."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.TAGBASE_IMPORT_RETENTION_DAYS)
    jobs = ImportJob.objects.filter(
        files_purged_at__isnull=True, finished_at__lt=cutoff, status__in=TERMINAL
    )
    purged = 0
    for job in jobs.iterator():
        delete_job_files(job)
        ImportJob.objects.filter(pk=job.pk).update(files_purged_at=now)
        purged += 1
    return purged


def delete_job_files(job: ImportJob) -> None:
    for name in (job.stored_name, job.rejects_name):
        if name:
            (import_dir() / name).unlink(missing_ok=True)


def reject_upload_error(exc: csvread.FileRejected) -> dict[str, object]:
    return exc.as_dict()


# --- Erasure (docs/privacy.md) ----------------------------------------------------------------


def find_customer_records(customer: ErasedCustomer) -> dict[int, FoundRecords]:
    """The imports' *prepare* step of erasing a customer: which stored uploads hold the
    customer's records, and where (reads files only; see ``imports.erasure``)."""
    return erasure.find_customer_records(customer)


def erase_customer(
    customer: ErasedCustomer, found: dict[int, FoundRecords] | None = None, *, actor: Actor
) -> dict[str, int]:
    """The imports' part of erasing a customer (registered as an eraser in ``apps.py``; runs
    inside ``customers.services.erase_customer``'s transaction): empty the customer's lines in
    the stored uploads that hold them, mask their staged rows and drop their rows from the
    rejected-rows reports. Raises ``ErasureBlocked`` while a worker is processing one of those
    imports. Idempotent: a second run finds no record of the customer left."""
    return erasure.erase_records(customer, found)
