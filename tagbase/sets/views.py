"""Pages of set operations: Customers → Target audiences → Combine (operands, operators, the
target, a live preview with the overlap of the operands, confirm, the job's progress), and an
audience's "Members on a date".

Thin entry points: parse the request, check the role, call ONE service, render. As on the other
pages, a request that names a part of the page with htmx (``HX-Target``) gets only that part
(a ``{% partialdef %}`` of the same template), and every page works without JavaScript.
Combining is a write (403 for analysts); everyone may read membership as of a date, and
analysts export Tagbase IDs only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_http_methods, require_safe

from tagbase.accounts.actors import Actor
from tagbase.audiences.models import Audience
from tagbase.audiences.queries import audience_list
from tagbase.audiences.services import AudienceError
from tagbase.customers.models import Customer
from tagbase.lib.csvsafe import csv_lines
from tagbase.lib.identifiers import ID_TYPE_LABELS, IdType
from tagbase.segments.models import Segment
from tagbase.sets import queries, services
from tagbase.sets.expressions import holds
from tagbase.sets.forms import AsOfForm, CombineForm, ExportForm
from tagbase.sets.models import JobStatus, SetJob

# Identifier types that are personal data: analysts may not export them (as for audiences).
PERSONAL_ID_TYPES = {IdType.EXTERNAL_ID, IdType.PHONE, IdType.EMAIL, IdType.CARD}
QUEUED_HINT_SECONDS = 10
# Where each region's count is written on the Venn diagram: (operands, mask) -> (x, y).
VENN_TEXT = {
    (2, 1): (92, 112),
    (2, 2): (228, 112),
    (2, 3): (160, 112),
    (3, 1): (96, 92),
    (3, 2): (234, 92),
    (3, 4): (165, 222),
    (3, 3): (165, 78),
    (3, 5): (116, 162),
    (3, 6): (214, 162),
    (3, 7): (165, 132),
}
VENN_VIEWBOX = {2: "30 30 260 165", 3: "40 25 250 230"}
VENN_CIRCLES = {
    2: [(125, 112), (195, 112)],
    3: [(130, 110), (200, 110), (165, 168)],
}


def writer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Log in first (anonymous users are redirected), then refuse read-only roles with 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.can_write:  # type: ignore[union-attr]
            raise PermissionDenied("Your role may not change audiences.")
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def _targets(request: HttpRequest, element_id: str) -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request and htmx.target == element_id  # type: ignore[union-attr]


def _template(request: HttpRequest, name: str, parts: dict[str, str]) -> str:
    for target, part in parts.items():
        if _targets(request, target):
            return f"{name}#{part}"
    return name


def _actor(request: HttpRequest) -> Actor:
    return Actor.of_user(request.user)  # type: ignore[arg-type]


# --- Combine ----------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def combine(request: HttpRequest) -> HttpResponse:
    """The page: operands and operators, the target, a live preview (htmx aimed at
    ``#combine-preview`` only recounts), and *Combine* (a POST with ``confirm``), which creates
    the job (its hidden token is the idempotency key) and goes to the job's page."""
    audiences = list(audience_list().values_list("pk", "name"))
    segments = list(Segment.objects.order_by("name_key").values_list("pk", "name"))
    bound = request.POST if request.method == "POST" else None
    initial = {"first": request.GET.get("first", "")} if bound is None else {}
    form = CombineForm(bound, initial=initial, audiences=audiences, segments=segments)
    context: dict[str, Any] = {"form": form}
    if bound is not None:
        valid = form.is_valid()
        if valid and "confirm" in request.POST and not _targets(request, "combine-preview"):
            job = _combine(request, form)
            if job is not None:
                return redirect("sets:set_job", pk=job.pk)
        context["preview"] = _preview(form)
    template = _template(request, "sets/combine.html", {"combine-preview": "preview"})
    return render(request, template, context)


def _combine(request: HttpRequest, form: CombineForm) -> SetJob | None:
    data = form.cleaned_data
    try:
        return services.combine(
            form.expression(),
            actor=_actor(request),
            mode=form.mode,
            audience_id=data["audience"],
            new_audience_name=data["new_audience_name"],
            idempotency_key=data["token"],
        )
    except AudienceError as exc:  # the new audience's name
        form.add_error("new_audience_name", exc.message)
    except services.SetError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
    return None


def _preview(form: CombineForm) -> dict[str, Any] | None:
    """The preview as far as the form allows: the operands and operators chosen give the
    overlap and the result; a chosen audience adds what would change in it."""
    data = form.cleaned_data
    if not all(data.get(f) for f in ("first", "op1", "second")):
        return None
    if bool(data.get("op2")) != bool(data.get("third")):
        return {"error": "Choose both the second operator and C, or neither."}
    target = data.get("audience") if data.get("target") in ("add", "replace") else None
    try:
        shown = services.preview(form.expression(), mode=form.mode, audience_id=target)
    except services.SetError as exc:
        return {"error": exc.message}
    n = len(shown.sources)
    in_result = {r.mask for r in shown.counts.regions if holds(shown.expression, r.mask)}
    regions = [
        {"region": r, "in_result": r.mask in in_result, "xy": VENN_TEXT.get((n, r.mask))}
        for r in shown.counts.regions
    ]
    circles = [
        {"x": x, "y": y, "label": shown.sources[i].label, "index": i}
        for i, (x, y) in enumerate(VENN_CIRCLES[n])
    ]
    return {
        "shown": shown,
        "regions": regions,
        "circles": circles,
        "viewbox": VENN_VIEWBOX[n],
        "new_name": data.get("new_audience_name"),
    }


@require_safe
@login_required
def set_job(request: HttpRequest, pk: int) -> HttpResponse:
    """One combine job; its status part polls itself while the job is queued or running."""
    try:
        job = services.get_job(pk)
    except services.SetError as exc:
        raise Http404(exc.message) from None
    context = {
        "job": job,
        "running": services.is_running(job),
        "waiting_for_worker": job.status == JobStatus.QUEUED
        and (timezone.now() - job.created_at).total_seconds() > QUEUED_HINT_SECONDS,
    }
    return render(
        request, _template(request, "sets/set_job.html", {"job-status": "status"}), context
    )


# --- Members on a date ------------------------------------------------------------------------


@require_safe
@login_required
def as_of(request: HttpRequest, pk: int) -> HttpResponse:
    """The audience's members at a past moment: the count, a keyset page, the CSV export."""
    audience = get_object_or_404(Audience, pk=pk)
    form = AsOfForm(request.GET if "date" in request.GET else None)
    context: dict[str, Any] = {"audience": audience, "form": form, "time_zone": settings.TIME_ZONE}
    can_write = request.user.can_write  # type: ignore[union-attr]
    context["export_types"] = [
        (str(t), label)
        for t, label in ID_TYPE_LABELS.items()
        if can_write or t not in PERSONAL_ID_TYPES
    ]
    if form.is_bound and form.is_valid():
        try:
            found = services.as_of(audience.pk, form.moment())
        except services.SetError as exc:
            form.add_error("date", exc.message)
        else:
            size = settings.TAGBASE_PAGE_SIZE
            after = _positive_int(request.GET.get("after"))
            ids = queries.page_as_of(audience.pk, found.at, after, size + 1)
            names = Customer.objects.in_bulk(ids[:size])
            context.update(
                found=found,
                after=after,
                members=[(i, names.get(i)) for i in ids[:size]],
                next_after=ids[size - 1] if len(ids) > size else None,
                query=_moment_query(form),
            )
    template = _template(request, "sets/as_of.html", {"as-of-members": "members"})
    return render(request, template, context)


def _moment_query(form: AsOfForm) -> str:
    day = form.cleaned_data["date"].isoformat()
    at = form.cleaned_data.get("time")
    return f"date={day}" + (f"&time={at:%H:%M:%S}" if at else "")


def _positive_int(text: str | None) -> int:
    if text and text.isascii() and text.isdigit() and len(text) < 19:
        return int(text)
    return 0


@require_safe
@login_required
def as_of_export(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Those members as CSV of one identifier type (a header naming it, then one value a line,
    formula-escaped), streamed from one cursor in constant memory."""
    audience = get_object_or_404(Audience, pk=pk)
    form, export = AsOfForm(request.GET), ExportForm(request.GET)
    if not (form.is_valid() and export.is_valid()):
        messages.error(request, "Choose a date and which identifier to export.")
        return redirect("sets:as_of", pk=audience.pk)
    id_type = IdType(export.cleaned_data["id_type"])
    if id_type in PERSONAL_ID_TYPES and not request.user.can_write:  # type: ignore[union-attr]
        raise PermissionDenied("Your role may not export personal data.")
    try:
        moment = services.check_moment(form.moment())
    except services.SetError as exc:
        messages.error(request, exc.message)
        return redirect("sets:as_of", pk=audience.pk)
    values = queries.identifiers_as_of(audience.pk, moment, str(id_type))
    response = StreamingHttpResponse(
        csv_lines(_with_header(str(id_type), ([v] for v in values))),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = content_disposition_header(
        True, f"audience-{audience.pk}-as-of-{moment:%Y%m%dT%H%M%S}-{id_type}.csv"
    )
    response["Cache-Control"] = "no-store"  # personal data: no copies in caches
    return response


def _with_header(header: str, rows: Iterator[list[str]]) -> Iterator[list[str]]:
    yield [header]
    yield from rows
