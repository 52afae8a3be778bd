"""REST endpoints for file imports (docs/api.md "Imports"; the pipeline in docs/imports.md).

Handlers are thin: parse (the schemas), permission (`tagbase.accounts.auth`), one service or
query call, the report. Errors are raised as exceptions and rendered by `tagbase.api` as
`{"error": {...}}` (the imports services' errors are mapped there too).

Who may do what:
- Writes (upload, commit, cancel, undo) need a token with the `import` scope, or the session
  of a user who may write (marketer, admin). `write` does not grant imports: an admin gives a
  partner system file imports on purpose.
- Reads (list, report) need `read`, like every GET. Tagbase is single-tenant, so every import is
  visible to any caller who may read, whoever started it.
- The rejected-rows CSV holds raw identifiers (personal data): a `read` token may fetch it, an
  analyst's session may not (analysts export no personal data).

An upload is streamed: Django hands the file to the service chunk by chunk, and `UploadLimit`
(first in the upload handler chain) refuses a file past `TAGBASE_IMPORT_MAX_BYTES` as soon as
it gets there, or at once when Content-Length already says so, before anything is stored.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import FileResponse, HttpRequest, HttpResponseBase
from django.urls import reverse
from ninja import File, Form, Header, Path, Query, Router, Status, UploadedFile
from ninja.decorators import decorate_view
from ninja.errors import ValidationError

from tagbase.accounts.auth import ApiError, Forbidden, actor_of, api_auth, error_responses
from tagbase.accounts.models import Scope, User
from tagbase.imports import queries, services
from tagbase.imports.models import ImportJob, ImportStatus
from tagbase.imports.schemas import MAX_ID, ImportForm, ImportOut, ImportPage

router = Router()  # mounted at /imports
IMPORTERS = api_auth(Scope.IMPORT.value)  # writes: the import scope, or a role that may write

MAX_PAGE = 1000
MAX_OFFSET = 10**9  # keeps OFFSET + LIMIT inside a BIGINT
# Room for the multipart framing and the small form fields around the file. A body longer
# than the limit plus this cannot hold a file within the limit, so it is refused unread.
MULTIPART_SLACK = 1 << 20
FORM_PARTS = frozenset(ImportForm.model_fields) | {"file", "csrfmiddlewaretoken"}
IDEMPOTENCY_KEY = Header(
    None,
    alias="Idempotency-Key",
    min_length=1,
    max_length=200,
    pattern=r"^[\x21-\x7e]+$",
    description="1-200 visible ASCII characters. Repeating a request with the same key "
    "returns the first import instead of starting another (per token or user).",
)
REJECTS_CSV = {
    "200": {
        "description": "The rejected rows: line, raw_value, reason_code, message",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


def _job_id() -> int:
    return Path(..., ge=1, le=MAX_ID, description="Import id")  # type: ignore[no-any-return]


# --- Upload size ------------------------------------------------------------------------------


def _too_large() -> services.UploadTooLarge:
    limit = settings.TAGBASE_IMPORT_MAX_BYTES
    return services.UploadTooLarge(
        "TOO_LARGE",
        f"The file is larger than the limit of {limit:,} bytes (TAGBASE_IMPORT_MAX_BYTES).",
        "file",
    )


class UploadLimit(FileUploadHandler):
    """Refuses an upload whose files pass TAGBASE_IMPORT_MAX_BYTES while it streams, so an
    oversized body is never spooled in full. Passes every chunk on to the next handler."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.received = 0  # file bytes over all file parts

    def handle_raw_input(self, input_data: Any, META: Any, content_length: int, *args: Any) -> None:
        if content_length > settings.TAGBASE_IMPORT_MAX_BYTES + MULTIPART_SLACK:
            raise _too_large()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.TAGBASE_IMPORT_MAX_BYTES:
            raise _too_large()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (memory or temporary file) builds the UploadedFile


def _bounded_upload(run: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Put UploadLimit first, before anything (authentication's CSRF check, the form) reads
    the body; afterwards close whatever a refused or broken upload left half-written, so no
    temporary file outlives the request."""

    @functools.wraps(run)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        request.upload_handlers = [UploadLimit(request), *request.upload_handlers]
        try:
            return run(request, *args, **kwargs)
        finally:
            for handler in request.upload_handlers:
                partial = getattr(handler, "file", None)
                if partial is not None:
                    partial.close()

    return wrapper


def _refuse_unknown_fields(request: HttpRequest) -> None:
    """ninja reads only the declared fields; a misspelt one (``dryrun``) must not be ignored,
    nor a field sent twice (which value would win is not obvious)."""
    sent = {
        name: len(request.POST.getlist(name)) + len(request.FILES.getlist(name))
        for name in [*request.POST, *request.FILES]
    }
    problems = [
        {"loc": (name,), "type": "extra_forbidden", "msg": "Unknown field"}
        for name in sent
        if name not in FORM_PARTS
    ] + [
        {"loc": (name,), "type": "repeated", "msg": "Send this field once"}
        for name, count in sent.items()
        if name in FORM_PARTS and count > 1
    ]
    if problems:
        raise ValidationError(problems)


# --- Endpoints --------------------------------------------------------------------------------


@router.post(
    "",
    response={202: ImportOut, **error_responses(400, 409, 413)},
    auth=IMPORTERS,
)
@decorate_view(_bounded_upload)
def import_create(
    request: HttpRequest,
    file: File[UploadedFile],
    form: Form[ImportForm],
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Status[dict[str, Any]]:
    """Upload a file to import (multipart/form-data). Answers 202 with the queued job's
    report; poll `links.self` until it is finished (or `previewed` for a dry run)."""
    _refuse_unknown_fields(request)
    job = services.start_import(
        file.chunks(),
        file.name or "",
        form.as_request(),
        actor=actor_of(request),
        source="api",
        idempotency_key=idempotency_key or "",
    )
    return Status(202, _report(job))


@router.get("", response={200: ImportPage, **error_responses()})
def import_list(
    request: HttpRequest,
    status: ImportStatus | None = None,
    limit: int = Query(50, ge=1, le=MAX_PAGE, description=f"1 to {MAX_PAGE}"),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> dict[str, object]:
    """Imports, newest first, optionally in one status; every caller's, not only yours."""
    # job_report reads each job's operations with its own query (one per job); the prefetch
    # is there for when it reads them from job.targets.all().
    found = queries.job_list().prefetch_related("targets")
    if status:
        found = found.filter(status=status)
    return {
        "items": [_report(job) for job in found[offset : offset + limit]],
        "count": found.count(),
        "limit": limit,
        "offset": offset,
    }


@router.get("/{job_id}", response={200: ImportOut, **error_responses(404)})
def import_detail(request: HttpRequest, job_id: int = _job_id()) -> dict[str, Any]:
    """The import report: state, progress and counters. Poll it while the import runs."""
    return _report(_job(job_id))


@router.post(
    "/{job_id}/commit",
    response={202: ImportOut, **error_responses(404, 409)},
    auth=IMPORTERS,
)
def import_commit(request: HttpRequest, job_id: int = _job_id()) -> Status[dict[str, Any]]:
    """Apply a previewed (dry-run) import; 409 `not_previewed` for any other state."""
    job = services.commit_import(_job(job_id), actor=actor_of(request))
    return Status(202, _report(job))


@router.post(
    "/{job_id}/cancel",
    response={200: ImportOut, **error_responses(404, 409)},
    auth=IMPORTERS,
)
def import_cancel(request: HttpRequest, job_id: int = _job_id()) -> dict[str, Any]:
    """Stop an import that has not finished (what it applied is undone). Repeating it is
    harmless; 409 `already_finished` for a finished import (undo it instead)."""
    return _report(services.cancel_import(_job(job_id), actor=actor_of(request)))


@router.post(
    "/{job_id}/undo",
    response={200: ImportOut, **error_responses(404, 409)},
    auth=IMPORTERS,
)
def import_undo(request: HttpRequest, job_id: int = _job_id()) -> dict[str, Any]:
    """Undo a finished import, once: members it added leave, members it removed come back.
    409 `cannot_undo` otherwise."""
    return _report(services.undo_import(_job(job_id), actor=actor_of(request)))


@router.get(
    "/{job_id}/rejects.csv",
    response=error_responses(404),
    openapi_extra={"responses": REJECTS_CSV},
)
def import_rejects(request: HttpRequest, job_id: int = _job_id()) -> FileResponse:
    """The rejected rows as CSV (formula-escaped). 404 `not_found` when the import has none
    yet (still reading, or the file was refused as a whole) or they were purged."""
    if isinstance(request.auth, User) and not request.auth.can_write:  # type: ignore[attr-defined]
        raise Forbidden("forbidden", "Your role may not export personal data.")
    path = queries.rejects_path(_job(job_id))
    try:
        stream = path.open("rb") if path else None
    except FileNotFoundError:  # purged between the check and the open
        stream = None
    if stream is None:
        raise ApiError(
            404,
            "not_found",
            f"Import {job_id} has no rejected rows file: it is not written yet, the file was "
            f"refused as a whole, or it was purged after {settings.TAGBASE_IMPORT_RETENTION_DAYS}"
            " days.",
        )
    response = FileResponse(stream, as_attachment=True, filename=f"import-{job_id}-rejects.csv")
    response["Content-Type"] = "text/csv; charset=utf-8"
    response["Cache-Control"] = "no-store"  # personal data: no copies in caches
    return response


# --- Helpers ----------------------------------------------------------------------------------


def _job(job_id: int) -> ImportJob:
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None:
        raise ApiError(404, "import_not_found", f"Import {job_id} does not exist.")
    return job


def _report(job: ImportJob) -> dict[str, Any]:
    return {**queries.job_report(job), "links": _links(job)}


def _links(job: ImportJob) -> dict[str, str | None]:
    """Where a client goes next; null where that action is not possible in this state."""

    def url(view: str) -> str:
        return reverse(f"api:{view}", kwargs={"job_id": job.pk})

    return {
        "self": url("import_detail"),
        "rejects": url("import_rejects") if job.rejects_name and not job.files_purged_at else None,
        "commit": url("import_commit") if job.status == ImportStatus.PREVIEWED else None,
        "cancel": url("import_cancel") if not job.is_terminal else None,
        "undo": url("import_undo") if job.is_successful and not job.undone_at else None,
    }
