"""Pages of Customers → User segments: the list, the builder (new and edit), the segment page and
its actions (include in a target audience, refresh, export, rename, duplicate, delete).

Thin entry points: parse the request, check the role, call ONE service, render. As on the
audience pages, a request that names a part of the page with htmx (``HX-Target``) gets only
that part (a ``{% partialdef %}`` of the same template), and every page works without
JavaScript. The builder (``static/segments/builder.js``) edits the rule tree and writes it as
JSON into the form's ``rules`` field: the server validates everything the builder sends, and
rule errors name their place (``rules[2].value: …``) so the builder shows them next to that
condition. Analysts read every page but change nothing (403 on every write view) and export
Tagbase IDs only, exactly as for audiences.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from tagbase.accounts.actors import Actor
from tagbase.audiences.queries import audience_list
from tagbase.audiences.services import AudienceError
from tagbase.lib.csvsafe import csv_lines
from tagbase.lib.identifiers import ID_TYPE_LABELS, IdType
from tagbase.lib.names import audience_name_key
from tagbase.segments import queries, services
from tagbase.segments.catalogue import catalogue_json
from tagbase.segments.compiler import describe
from tagbase.segments.forms import (
    DuplicateForm,
    ExportForm,
    IncludeForm,
    RenameForm,
    RulesForm,
    SegmentForm,
    SegmentListForm,
)
from tagbase.segments.models import JobAction, JobStatus, Segment, SegmentJob
from tagbase.segments.rules import RuleError, empty_rule, validate

# Identifier types that are personal data: analysts may not export them (as for audiences).
PERSONAL_ID_TYPES = {IdType.EXTERNAL_ID, IdType.PHONE, IdType.EMAIL, IdType.CARD}
SAMPLE_SIZE = 20  # members shown by *Select*
JOBS_SHOWN = 5
QUEUED_HINT_AFTER = timedelta(seconds=10)


def writer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Log in first (anonymous users are redirected), then refuse read-only roles with 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.can_write:  # type: ignore[union-attr]
            raise PermissionDenied("Your role may not change segments.")
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def _targets(request: HttpRequest, element_id: str) -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request and htmx.target == element_id  # type: ignore[union-attr]


def _template(request: HttpRequest, name: str, parts: dict[str, str]) -> str:
    """The page's template, or one of its partials when htmx asked for that part of the page."""
    for target, part in parts.items():
        if _targets(request, target):
            return f"{name}#{part}"
    return name


def _go(request: HttpRequest, url: str) -> HttpResponse:
    """Redirect; an htmx request (a form in a dialog) gets a full-page client redirect."""
    if getattr(request, "htmx", None):
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _actor(request: HttpRequest) -> Actor:
    return Actor.of_user(request.user)  # type: ignore[arg-type]


def _service_error(form: Any, exc: services.SegmentError | AudienceError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def _detail_url(segment: Segment) -> str:
    return reverse("segments:segment_detail", args=[segment.pk])


# --- The list ----------------------------------------------------------------------------------


@require_safe
@login_required
def segment_list(request: HttpRequest) -> HttpResponse:
    q = SegmentListForm(request.GET).query()
    found = Segment.objects.select_related("updated_by").order_by("name_key", "pk")
    key = audience_name_key(q) if q else ""
    if key:
        found = found.filter(name_key__contains=key)
    page = Paginator(found, settings.TAGBASE_PAGE_SIZE).get_page(request.GET.get("page"))
    template = _template(request, "segments/segment_list.html", {"results": "results"})
    return render(request, template, {"page_obj": page, "q": q})


# --- The builder -------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def segment_create(request: HttpRequest) -> HttpResponse:
    return _builder(request, None)


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def segment_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _builder(request, get_object_or_404(Segment, pk=pk))


def _builder(request: HttpRequest, segment: Segment | None) -> HttpResponse:
    """New and edit share one page. *Select* (a submit button named ``select``, or htmx aimed at
    ``#selection``) previews the rule; any other POST saves it."""
    initial = (
        {"name": segment.name, "description": segment.description, "rules": segment.rules}
        if segment
        else {"rules": empty_rule()}
    )
    selecting = request.method == "POST" and (
        "select" in request.POST or _targets(request, "selection")
    )
    if selecting:  # nothing is saved: show the fields as sent, without "required" errors
        fields = ("name", "description", "rules")
        form = SegmentForm(initial={f: request.POST.get(f, "") for f in fields})
    else:
        form = SegmentForm(request.POST if request.method == "POST" else None, initial=initial)
    context: dict[str, Any] = {"segment": segment, "form": form}
    if selecting:
        context["selection"] = _select(request, segment)
    elif request.method == "POST" and form.is_valid():
        saved = _save(request, form, segment)
        if saved is not None:
            return _go(request, _detail_url(saved))
    if _targets(request, "selection"):  # htmx asked for the selection only
        return render(request, "segments/segment_builder.html#selection", context)
    context["rule_error"] = context.get("selection", {}).get("error") or _rule_error(form)
    context.update(_builder_data(segment))
    return render(request, "segments/segment_builder.html", context)


def _save(request: HttpRequest, form: SegmentForm, segment: Segment | None) -> Segment | None:
    data = form.cleaned_data
    try:
        if segment is None:
            saved = services.create_segment(
                data["name"], data["rules"], actor=_actor(request), description=data["description"]
            )
        else:
            saved = services.update_segment(
                segment,
                actor=_actor(request),
                name=data["name"],
                rules=data["rules"],
                description=data["description"],
            )
    except RuleError as exc:
        form.add_error("rules", exc.message)
        form.rule_error = exc  # type: ignore[attr-defined]
        return None
    except services.SegmentError as exc:
        _service_error(form, exc)
        return None
    messages.success(request, f"Segment “{saved.name}” saved.")
    return saved


def _rule_error(form: SegmentForm) -> dict[str, str] | None:
    exc = getattr(form, "rule_error", None)
    if exc is not None:
        return {"field": exc.field or "", "message": exc.detail, "text": exc.message}
    if form.is_bound and "rules" in form.errors:
        text = str(form.errors["rules"][0])
        return {"field": "", "message": text, "text": text}
    return None


def _select(request: HttpRequest, segment: Segment | None) -> dict[str, Any]:
    """*Select*: the five metrics, the first members and the rule's sentence, or the error."""
    form = RulesForm(request.POST)
    if not form.is_valid():
        text = str(form.errors["rules"][0])
        return {"error": {"field": "", "message": text, "text": text}}
    try:
        shown = services.preview(
            form.cleaned_data["rules"],
            sample=SAMPLE_SIZE,
            segment_id=segment.pk if segment else None,
        )
    except RuleError as exc:
        return {"error": {"field": exc.field or "", "message": exc.detail, "text": exc.message}}
    return {"preview": shown, "sample_size": SAMPLE_SIZE}


def _builder_data(segment: Segment | None) -> dict[str, Any]:
    """What the builder's pickers need: the field catalogue and the names of audiences and
    segments (a segment cannot pick itself)."""
    others = Segment.objects.order_by("name_key")
    if segment is not None:
        others = others.exclude(pk=segment.pk)
    return {
        "catalogue": catalogue_json(),
        "audience_names": [
            {"id": pk, "name": name} for pk, name in audience_list().values_list("pk", "name")
        ],
        "segment_names": [
            {"id": pk, "name": name} for pk, name in others.values_list("pk", "name")
        ],
    }


@require_POST
@login_required
def segment_count(request: HttpRequest) -> JsonResponse:
    """The builder's live count: the rule's member count now and its sentence, or the rule
    error with its place. A rule being edited is often unfinished, so an invalid rule is an
    answer (200 with ``error``), not a failed request. Changes nothing: every role may ask."""
    form = RulesForm(request.POST)
    if not form.is_valid():
        text = str(form.errors["rules"][0])
        return JsonResponse({"error": {"field": "", "message": text, "code": "invalid_json"}})
    segment_id = _int_or_none(request.POST.get("segment"))
    try:
        cleaned = services.clean_rules(form.cleaned_data["rules"], segment_id=segment_id)
        count = services.count(form.cleaned_data["rules"])
    except RuleError as exc:
        return JsonResponse(
            {"error": {"field": exc.field or "", "message": exc.detail, "code": exc.code}}
        )
    return JsonResponse({"count": count, "count_text": f"{count:,}", "summary": describe(cleaned)})


def _int_or_none(text: str | None) -> int | None:
    if text and text.isascii() and text.isdigit() and len(text) < 19:
        return int(text)
    return None


# --- One segment -------------------------------------------------------------------------------


@require_safe
@login_required
def segment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment.objects.select_related("created_by", "updated_by"), pk=pk)
    size = settings.TAGBASE_PAGE_SIZE
    after = _int_or_none(request.GET.get("after")) or 0
    context: dict[str, Any] = {"segment": segment, "after": after}
    try:
        tree = validate(segment.rules)
    except RuleError as exc:  # a rule saved before a catalogue change: say so, do not fail
        context["broken"] = exc.message
    else:
        rows = queries.member_page(tree, after=after, size=size + 1)
        context["members"] = rows[:size]
        context["next_after"] = rows[size - 1].sc_id if len(rows) > size else None
        context["summary"] = services.summary(segment)
    can_write = request.user.can_write  # type: ignore[union-attr]
    context["export_types"] = [
        (str(t), label)
        for t, label in ID_TYPE_LABELS.items()
        if can_write or t not in PERSONAL_ID_TYPES
    ]
    context["jobs"] = list(
        SegmentJob.objects.filter(segment=segment).select_related("operation")[:JOBS_SHOWN]
    )
    template = _template(request, "segments/segment_detail.html", {"members": "members"})
    return render(request, template, context)


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def segment_rename(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    form = RenameForm(
        request.POST if request.method == "POST" else None, initial={"name": segment.name}
    )
    if request.method == "POST" and form.is_valid():
        try:
            segment = services.update_segment(
                segment, actor=_actor(request), name=form.cleaned_data["name"]
            )
        except services.SegmentError as exc:
            _service_error(form, exc)
        else:
            messages.success(request, f"Segment renamed to “{segment.name}”.")
            return _go(request, _detail_url(segment))
    template = _template(request, "segments/segment_rename.html", {"modal": "dialog"})
    return render(request, template, {"segment": segment, "form": form})


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def segment_duplicate(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    form = DuplicateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            copy = services.duplicate_segment(
                segment, actor=_actor(request), name=form.cleaned_data["name"] or None
            )
        except (services.SegmentError, RuleError) as exc:
            _service_error(form, exc)  # type: ignore[arg-type]
        else:
            messages.success(request, f"Segment copied as “{copy.name}”.")
            return _go(request, _detail_url(copy))
    template = _template(request, "segments/segment_duplicate.html", {"modal": "dialog"})
    return render(request, template, {"segment": segment, "form": form})


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def segment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    if request.method == "POST":
        try:
            services.delete_segment(segment, actor=_actor(request))
        except services.SegmentError as exc:
            messages.error(request, exc.message)
            return _go(request, _detail_url(segment))
        messages.success(request, f"Segment “{segment.name}” deleted.")
        return _go(request, reverse("segments:segment_list"))
    context = {"segment": segment, "used_by": services.users_of(segment)}
    template = _template(request, "segments/segment_delete.html", {"modal": "dialog"})
    return render(request, template, context)


@require_POST
@writer_required
def segment_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    try:
        fresh = services.refresh_metrics(segment)
    except RuleError as exc:
        messages.error(request, f"The metrics cannot be computed: {exc.message}")
    else:
        messages.success(request, f"Metrics of “{fresh.name}” refreshed.")
    return _go(request, _detail_url(segment))


@require_safe
@login_required
def segment_export(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The members now as CSV of one identifier type (a header naming it, then one value a
    line, formula-escaped, as the API and the CLI write it), streamed in keyset chunks."""
    segment = get_object_or_404(Segment, pk=pk)
    form = ExportForm(request.GET)
    if not form.is_valid():
        messages.error(request, "Choose which identifier to export.")
        return redirect(_detail_url(segment))
    id_type = IdType(form.cleaned_data["id_type"])
    if id_type in PERSONAL_ID_TYPES and not request.user.can_write:  # type: ignore[union-attr]
        raise PermissionDenied("Your role may not export personal data.")
    try:
        tree = validate(segment.rules)
    except RuleError as exc:
        messages.error(request, f"The rule of this segment is not valid: {exc.message}")
        return redirect(_detail_url(segment))
    values = queries.iter_identifiers(tree, str(id_type))
    rows = ([v] for v in values)
    response = StreamingHttpResponse(
        csv_lines(_with_header(str(id_type), rows)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = content_disposition_header(
        True, f"segment-{segment.pk}-{id_type}.csv"
    )
    response["Cache-Control"] = "no-store"  # personal data: no copies in caches
    return response


def _with_header(header: str, rows: Any) -> Any:
    yield [header]
    yield from rows


# --- Include in a target audience --------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def segment_include(request: HttpRequest, pk: int) -> HttpResponse:
    """The dialog: add or remove, the audience, the exact count that will change, confirm.
    htmx aimed at ``#include-count`` only recounts; a POST with ``confirm`` creates the job
    (its hidden token is the idempotency key) and shows the job's status."""
    segment = get_object_or_404(Segment, pk=pk)
    audiences = list(audience_list().values_list("pk", "name"))
    bound = request.POST if request.method == "POST" else None
    form = IncludeForm(bound, audiences=audiences)
    context: dict[str, Any] = {"segment": segment, "form": form}
    if bound is not None and form.is_valid():
        data = form.cleaned_data
        if "confirm" in request.POST and not _targets(request, "include-count"):
            try:
                job = services.include_in_audience(
                    segment,
                    action=data["action"],
                    actor=_actor(request),
                    audience_id=data["audience"],
                    new_audience_name=data["new_audience_name"],
                    idempotency_key=data["token"],
                )
            except (services.SegmentError, AudienceError) as exc:
                if isinstance(exc, AudienceError):
                    exc.field = "new_audience_name"
                _service_error(form, exc)
            else:
                if getattr(request, "htmx", None):
                    return _job_response(request, job, template_part="dialog")
                return redirect("segments:segment_job", pk=job.pk)
        context["change"] = _change(segment, data, dict(audiences))
    template = _template(
        request, "segments/segment_include.html", {"modal": "dialog", "include-count": "count"}
    )
    return render(request, template, context)


def _change(segment: Segment, data: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """How many customers the job would change if it ran now (``services.count_change``)."""
    audience_id = data["audience"]
    return {
        "action": data["action"],
        "count": services.count_change(segment, data["action"], audience_id),
        "audience": names.get(audience_id, "") if audience_id else "",
        "new_name": (data.get("new_audience_name") or "").strip(),
    }


@require_safe
@login_required
def segment_job(request: HttpRequest, pk: int) -> HttpResponse:
    """One include job; its status part polls itself while the job is queued or running."""
    try:
        job = services.get_job(pk)
    except services.SegmentError as exc:
        raise Http404(exc.message) from None
    return _job_response(request, job)


def _job_response(request: HttpRequest, job: SegmentJob, template_part: str = "") -> HttpResponse:
    running = services.is_running(job)
    context = {
        "job": job,
        "running": running,
        "waiting_for_worker": job.status == JobStatus.QUEUED
        and timezone.now() - job.created_at > QUEUED_HINT_AFTER,
        "verb": "added to" if job.action == JobAction.ADD else "removed from",
    }
    name = "segments/segment_job.html"
    if template_part:
        template = f"{name}#{template_part}"
    else:
        template = _template(request, name, {"job-status": "status"})
    return render(request, template, context)
