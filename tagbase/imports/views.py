"""Pages of Data → Imports: the list, the upload form, the report, and its actions.

Thin entry points: parse the request, check the role, call ONE service, render. The report page
never waits for the job: while a worker runs it, the report polls itself with htmx (an
``HX-Target: import-report`` request gets only that part of the page) and stops polling once
the job rests. Analysts read every report but change nothing and may not download rejected
rows (they hold personal data): every write view and the download answer 403 to them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.core.paginator import Paginator
from django.db.models import Count, Max
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from tagbase.accounts.actors import Actor
from tagbase.imports import queries, report_page, services, uploads
from tagbase.imports.forms import ImportForm, ImportListForm
from tagbase.imports.models import ImportJob, ImportMode, ImportStatus, ImportTarget
from tagbase.lib.identifiers import ID_TYPE_LABELS, IdType

REPORT_PART = "import-report"
TARGETS_SHOWN = 100


def writer_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Log in first (anonymous users are redirected), then refuse read-only roles with 403
    before anything else happens (an upload's body is not even read)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.can_write:  # type: ignore[union-attr]
            raise PermissionDenied("Your role may not import or change audiences.")
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def _actor(request: HttpRequest) -> Actor:
    return Actor.of_user(request.user)  # type: ignore[arg-type]


def _go(request: HttpRequest, url: str) -> HttpResponse:
    """Redirect; an htmx request (a form in a dialog) gets a full-page client redirect."""
    if getattr(request, "htmx", None):
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _targets(request: HttpRequest, element_id: str) -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request and htmx.target == element_id  # type: ignore[union-attr]


def _job(pk: int) -> ImportJob:
    return get_object_or_404(queries.job_list(), pk=pk)


def _detail_url(job: ImportJob) -> str:
    return reverse("imports:import_detail", args=[job.pk])


# --- The list ----------------------------------------------------------------------------------


@require_safe
@login_required
def import_list(request: HttpRequest) -> HttpResponse:
    form = ImportListForm(request.GET)
    jobs = queries.job_list()
    statuses = form.statuses()
    if statuses:
        jobs = jobs.filter(status__in=statuses)
    page = Paginator(jobs, settings.TAGBASE_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = _with_target_summary(list(page.object_list))
    context = {"form": form, "page_obj": page}
    partial = "#results" if _targets(request, "results") else ""
    return render(request, "imports/import_list.html" + partial, context)


def _with_target_summary(jobs: list[ImportJob]) -> list[ImportJob]:
    """Set ``target_count`` (audiences the job names; a per-row file may add to and remove from
    one audience: two targets, one audience) and ``target_audience_id`` (the audience
    of a one-audience job, also one it created) on each job of a page, in one query."""
    rows = (
        ImportTarget.objects.filter(job_id__in=[job.pk for job in jobs])
        .values("job_id")
        .annotate(count=Count("key", distinct=True), any_audience=Max("audience_id"))
    )
    summary: dict[int, dict[str, Any]] = {row["job_id"]: dict(row) for row in rows}
    for job in jobs:
        row = summary.get(job.pk, {})
        job.target_count = row.get("count", 0)  # type: ignore[attr-defined]
        job.target_audience_id = row.get("any_audience") or job.audience_id  # type: ignore[attr-defined]
    return jobs


# --- The upload form ---------------------------------------------------------------------------


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def import_new(request: HttpRequest) -> HttpResponse:
    """The upload: size checked before the body is read (413), our handler installed before
    Django parses it, then the CSRF check and the form (``_import_form``). This is the pattern
    Django documents for changing upload handlers in a view: csrf_exempt outside, csrf_protect
    inside, because the CSRF check itself reads ``request.POST``."""
    if request.method == "POST":
        if uploads.declared_too_large(request):
            return _upload_refused(request, 413, declared=uploads.declared_length(request))
        limiter = uploads.install(request)
        try:
            request.POST, request.FILES  # noqa: B018 - parse now, through the handler above
        except (OSError, MultiPartParserError, SuspiciousOperation) as exc:
            # The client went away or sent a broken body: nothing of it may stay on disk.
            uploads.discard_uploads(request)
            return _upload_refused(request, 400, broken=not isinstance(exc, OSError))
        if limiter.exceeded:
            return _upload_refused(request, 413, form=_unbound_copy(request))
    return _import_form(request)


@csrf_protect
def _import_form(request: HttpRequest) -> HttpResponse:
    status = 200
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                job = services.start_import(
                    upload.chunks(),
                    upload.name or "upload.csv",
                    form.to_request(),
                    actor=_actor(request),
                    source="ui",
                )
            except services.UploadTooLarge as exc:
                form.add_error("file", exc.message)
                status = 413
            except services.ImportError_ as exc:
                form.add_error(form.field_for(exc.field), exc.message)
            else:
                return redirect(_detail_url(job))
    else:
        form = ImportForm(initial=_initial(request))
    return render(request, "imports/import_new.html", _form_context(form), status=status)


def _initial(request: HttpRequest) -> dict[str, Any]:
    """Preselect the audience the user came from (``?audience=<id>``), if it is a plain id."""
    audience = request.GET.get("audience", "")
    if audience.isascii() and audience.isdigit() and len(audience) < 19:
        return {"audience": int(audience)}
    return {}


def _unbound_copy(request: HttpRequest) -> ImportForm:
    """The form as the user filled it, without errors: the file is all that is wrong."""
    initial: dict[str, Any] = request.POST.dict()
    initial["dry_run"] = "dry_run" in request.POST
    return ImportForm(initial=initial)


def _form_context(form: ImportForm, **extra: Any) -> dict[str, Any]:
    context = {"form": form, "max_new_audiences": settings.TAGBASE_IMPORT_MAX_NEW_AUDIENCES}
    context.update(extra)
    return context


def _upload_refused(
    request: HttpRequest,
    status: int,
    *,
    form: ImportForm | None = None,
    declared: int = 0,
    broken: bool = False,
) -> HttpResponse:
    """The form again, with why the upload was refused: too large (413; the choices are kept
    when the body was read), broken off or unreadable (400)."""
    form = form or ImportForm(initial=_initial(request))
    limit = uploads.max_bytes()
    if status == 413:
        problem = (
            f"The file is larger than the limit of {filesizeformat(limit)} ({limit:,} bytes), "
            "so it was not uploaded. Split it into smaller files and import each one."
        )
    elif broken:
        problem = "The form could not be read (a damaged request, or too many fields). "
        problem += "Nothing was stored; reload the page and try again."
    else:
        problem = "The upload was interrupted before the whole file arrived. Nothing was stored; "
        problem += "choose the file and try again."
    context = _form_context(form, upload_problem=problem, declared=declared)
    return render(request, "imports/import_new.html", context, status=status)


# --- The report --------------------------------------------------------------------------------


@require_safe
@login_required
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(pk)
    polling = _targets(request, REPORT_PART)
    if polling and report_page.is_resting(job):
        level, text = report_page.finished_message(job)
        messages.add_message(request, getattr(messages, level.upper()), text)
    template = "imports/import_detail.html" + ("#report" if polling else "")
    return render(request, template, _report_context(request, job, polling=polling))


def _report_context(request: HttpRequest, job: ImportJob, *, polling: bool) -> dict[str, Any]:
    can_write = bool(request.user.can_write)  # type: ignore[union-attr]
    # An audience has at most two targets (add, remove): 2 * (shown + 1) rows hold the first
    # TARGETS_SHOWN audiences whole, and tell whether there are more.
    rows = job.targets.select_related("audience", "operation").order_by("name", "key", "action")
    outcomes = queries.audience_outcomes(rows[: 2 * (TARGETS_SHOWN + 1)])
    return {
        "job": job,
        "polling": polling,
        "resting": report_page.is_resting(job),
        "can_write": can_write,
        "id_label": _id_label(job.id_type),
        "status_text": report_page.status_text(job),
        "status_badge": report_page.STATUS_BADGE.get(ImportStatus(job.status), "badge-info"),
        "alert_level": report_page.ALERT_LEVEL.get(ImportStatus(job.status), "info"),
        "waiting_for_worker": report_page.waiting_for_worker(job),
        "counters": report_page.counters(job),
        "shows_identity": report_page.shows_identity(job),
        "identity_holds": report_page.identity_holds(job),
        "reasons": report_page.invalid_reasons(job),
        "bar": report_page.outcome_bar(job),
        "problem": report_page.file_problem(job),
        "duration": report_page.duration(job),
        "targets": outcomes[:TARGETS_SHOWN],
        "more_targets": len(outcomes) > TARGETS_SHOWN,
        "single_target": outcomes[0] if job.mode == ImportMode.SINGLE and outcomes else None,
        "actions": report_page.actions_used(job),
        "rejects_ready": bool(job.rejected_rows) and queries.rejects_path(job) is not None,
        "can_undo": can_write and job.is_successful and job.undone_at is None,
    }


def _id_label(value: str) -> str:
    try:
        return ID_TYPE_LABELS[IdType(value)]
    except ValueError:
        return value


@require_POST
@writer_required
def import_commit(request: HttpRequest, pk: int) -> HttpResponse:
    """Apply a previewed job (the dry run's Import button)."""
    job = _job(pk)
    try:
        services.commit_import(job, actor=_actor(request))
    except services.ImportError_ as exc:
        messages.error(request, exc.message)
    else:
        messages.info(request, f"Import #{job.pk} is being applied.")
    return _go(request, _detail_url(job))


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def import_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a running job, or discard a preview. GET asks for confirmation (a dialog with
    htmx, a page without)."""
    job = _job(pk)
    if request.method == "POST":
        try:
            job = services.cancel_import(job, actor=_actor(request))
        except services.ImportError_ as exc:
            messages.error(request, exc.message)
        else:
            if job.status == ImportStatus.CANCELLED:
                messages.success(request, f"Import #{job.pk} cancelled; nothing was changed.")
            else:
                messages.info(
                    request,
                    f"Cancelling import #{job.pk}: the worker stops at its next batch and "
                    "undoes what it applied.",
                )
        return _go(request, _detail_url(job))
    template = "imports/import_cancel.html" + ("#dialog" if _targets(request, "modal") else "")
    return render(request, template, {"job": job})


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def import_undo(request: HttpRequest, pk: int) -> HttpResponse:
    """Undo a finished import: GET lists the operations that will be undone, POST undoes them."""
    job = _job(pk)
    if request.method == "POST":
        try:
            services.undo_import(job, actor=_actor(request))
        except services.ImportError_ as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Import #{job.pk} undone.")
        return _go(request, _detail_url(job))
    operations = [
        t
        for t in job.targets.select_related("operation", "audience").order_by("name", "action")
        if t.operation_id
    ]
    template = "imports/import_undo.html" + ("#dialog" if _targets(request, "modal") else "")
    return render(request, template, {"job": job, "targets": operations})


@require_safe
@writer_required
def import_rejects(request: HttpRequest, pk: int) -> FileResponse:
    """The rejected rows as CSV (line, raw_value, reason_code, message), formula-escaped by the
    pipeline that wrote it. Personal data: not for analysts."""
    job = _job(pk)
    path = queries.rejects_path(job)
    if path is None:
        raise Http404("This import has no rejected rows file (none, or deleted after retention).")
    response = FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"import-{job.pk}-rejected-rows.csv",
        content_type="text/csv; charset=utf-8",
    )
    response["Cache-Control"] = "no-store"
    return response
