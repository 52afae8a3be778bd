"""Pages of Customers → Target audiences.

Thin entry points: parse the request, check the role, call ONE service, render. Every page
works without JavaScript; with htmx, a request that names a part of the page (``HX-Target``)
gets only that part (a ``{% partialdef %}`` of the same template), so there is one template per
page and no second copy of any markup. Analysts read everything but change nothing: every
write view answers 403 to them, and they may export only Tagbase IDs (no personal data: not
the other identifiers, nor the ad-platform lists of hashed e-mails and phones).
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
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_http_methods, require_safe
from django_htmx.http import HttpResponseClientRedirect

from tagbase.accounts.actors import Actor
from tagbase.audiences import exports, queries, services
from tagbase.audiences.forms import (
    AudienceForm,
    AudienceListForm,
    ExportForm,
    MemberFindForm,
    MembersChangeForm,
    MemberTtlForm,
    RenameForm,
)
from tagbase.audiences.models import Audience, Operation, OperationKind
from tagbase.customers.queries import AmbiguousIdentifier, find_customer, resolve_identifiers
from tagbase.lib.identifiers import ID_TYPE_LABELS, IdType, InvalidIdentifier

OPERATIONS_SHOWN = 20


def writer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Log in first (anonymous users are redirected), then refuse read-only roles with 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.can_write:  # type: ignore[union-attr]
            raise PermissionDenied("Your role may not change audiences.")
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def _template(request: HttpRequest, name: str, parts: dict[str, str]) -> str:
    """The page's template, or one of its partials when htmx asked for that part of the page.
    ``parts`` maps an ``HX-Target`` element id to the partial that renders it."""
    htmx = getattr(request, "htmx", None)
    if htmx and not htmx.history_restore_request and htmx.target in parts:
        return f"{name}#{parts[htmx.target]}"
    return name


def _go(request: HttpRequest, url: str) -> HttpResponse:
    """Redirect; an htmx request (a form in a dialog) gets a full-page client redirect."""
    if getattr(request, "htmx", None):
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _service_error(form: Any, exc: services.AudienceError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def _actor(request: HttpRequest) -> Actor:
    return Actor.of_user(request.user)  # type: ignore[arg-type]


# --- The list ----------------------------------------------------------------------------------


@require_safe
@login_required
def audience_list(request: HttpRequest) -> HttpResponse:
    q, sort = AudienceListForm(request.GET).values()
    audiences = queries.search_audiences(q=q, sort=sort)
    page = Paginator(audiences, settings.TAGBASE_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page_obj": page, "q": q, "sort": sort, "create_form": AudienceForm()}
    template = _template(request, "audiences/audience_list.html", {"results": "results"})
    return render(request, template, context)


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def audience_create(request: HttpRequest) -> HttpResponse:
    form = AudienceForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            audience = services.create_audience(
                form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                member_ttl_days=form.cleaned_data["member_ttl_days"],
                actor=_actor(request),
            )
        except services.AudienceError as exc:
            _service_error(form, exc)
        else:
            messages.success(request, f"Audience “{audience.name}” created.")
            return _go(request, reverse("audiences:audience_detail", args=[audience.pk]))
    template = _template(request, "audiences/audience_create.html", {"modal": "dialog"})
    return render(request, template, {"form": form})


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def audience_rename(request: HttpRequest, pk: int) -> HttpResponse:
    """Rename inline in the list (htmx swaps the row), in a dialog, or on a page of its own."""
    audience = get_object_or_404(Audience, pk=pk)
    row_id = f"audience-{audience.pk}"
    form = RenameForm(
        request.POST if request.method == "POST" else None, initial={"name": audience.name}
    )
    if request.method == "POST" and form.is_valid():
        try:
            audience = services.rename_audience(
                audience, form.cleaned_data["name"], actor=_actor(request)
            )
        except services.AudienceError as exc:
            _service_error(form, exc)
        else:
            messages.success(request, f"Audience renamed to “{audience.name}”.")
            if _targets(request, row_id):
                return render(request, "audiences/_row_saved.html", {"audience": audience})
            return _go(request, _next_url(request, audience))
    if _targets(request, row_id) and request.GET.get("cancel"):
        return render(request, "audiences/audience_list.html#row", {"audience": audience})
    context = {
        "audience": audience,
        "form": form,
        "next": _next_url(request, audience),
        "from_list": _came_from_list(request),
    }
    if _targets(request, row_id):
        return render(request, "audiences/audience_list.html#row-edit", context)
    template = _template(request, "audiences/audience_rename.html", {"modal": "dialog"})
    return render(request, template, context)


def _targets(request: HttpRequest, element_id: str) -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and htmx.target == element_id  # type: ignore[union-attr]


def _next_url(request: HttpRequest, audience: Audience) -> str:
    """Where to go after renaming: back to the list when the user came from it."""
    if _came_from_list(request):
        return reverse("audiences:audience_list")
    return reverse("audiences:audience_detail", args=[audience.pk])


def _came_from_list(request: HttpRequest) -> bool:
    return (request.POST.get("next") or request.GET.get("next")) == "list"


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def audience_delete(request: HttpRequest, pk: int) -> HttpResponse:
    audience = get_object_or_404(Audience, pk=pk)
    if request.method == "POST":
        try:
            removed = services.delete_audience(audience, actor=_actor(request))
        except services.AudienceError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request, f"Audience “{audience.name}” deleted ({removed:,} memberships removed)."
            )
        return _go(request, reverse("audiences:audience_list"))
    template = _template(request, "audiences/audience_delete.html", {"modal": "dialog"})
    return render(request, template, {"audience": audience})


@require_safe
@writer_required
def audience_import(request: HttpRequest) -> HttpResponse:
    """The first address of Import audiences, kept for bookmarks: the upload lives in the
    imports app (``imports:import_new``); the query (``?audience=<id>``) goes along."""
    url = reverse("imports:import_new")
    query = request.GET.urlencode()
    return redirect(f"{url}?{query}" if query else url)


# --- One audience --------------------------------------------------------------------------


@require_safe
@login_required
def audience_detail(request: HttpRequest, pk: int) -> HttpResponse:
    audience = get_object_or_404(Audience.objects.select_related("created_by"), pk=pk)
    context = _detail_context(request, audience)
    parts = {"members": "members", "member-find": "member-find"}
    return render(request, _template(request, "audiences/audience_detail.html", parts), context)


def _detail_context(request: HttpRequest, audience: Audience, **extra: Any) -> dict[str, Any]:
    size = settings.TAGBASE_PAGE_SIZE
    after = _positive_int(request.GET.get("after"))
    rows = list(queries.members_page(audience.pk, after, limit=size + 1))
    operations = list(queries.audience_operations(audience.pk)[: OPERATIONS_SHOWN + 1])
    can_write = request.user.can_write  # type: ignore[union-attr]
    context = {
        "audience": audience,
        "members": rows[:size],
        "next_after": rows[size - 1].customer_id if len(rows) > size else None,
        "after": after,
        "operations": operations[:OPERATIONS_SHOWN],
        "more_operations": len(operations) > OPERATIONS_SHOWN,
        "find_form": MemberFindForm(request.GET if "find" in request.GET else None),
        "found": _find_member(request, audience) if "find" in request.GET else None,
        "export_form": ExportForm(),
        "export_types": _export_types(can_write),
        "export_platforms": _export_platforms(can_write),
        "change_form": MembersChangeForm() if can_write else None,
        "ttl_form": _ttl_form(audience) if can_write else None,
        "max_ids": settings.TAGBASE_MAX_IDS_PER_REQUEST,
    }
    context.update(extra)
    return context


def _positive_int(text: str | None) -> int:
    """A keyset cursor from the query string; anything that is not a plain id starts over."""
    if text and text.isascii() and text.isdigit() and len(text) < 19:
        return int(text)
    return 0


def _export_types(can_write: bool) -> list[tuple[str, str]]:
    """The identifier types the user may export (analysts: Tagbase IDs only)."""
    return [
        (str(t), label)
        for t, label in ID_TYPE_LABELS.items()
        if can_write or not exports.is_personal(str(t))
    ]


def _export_platforms(can_write: bool) -> list[tuple[str, str]]:
    """The ad-platform layouts, for roles that may export personal data."""
    if not can_write:
        return []
    return [(str(p), f"{layout.label} (hashed)") for p, layout in exports.LAYOUTS.items()]


def _find_member(request: HttpRequest, audience: Audience) -> dict[str, Any]:
    """Resolve one identifier to a customer, then tell whether that customer is a member."""
    form = MemberFindForm(request.GET)
    if not form.is_valid():
        return {"status": "invalid", "message": "Choose a type and enter an identifier."}
    id_type, raw = form.cleaned_data["find_type"], form.cleaned_data["find"]
    try:
        customer = find_customer(id_type, raw)
    except InvalidIdentifier as exc:
        return {"status": "invalid", "message": exc.message}
    except AmbiguousIdentifier as exc:
        return {"status": "ambiguous", "message": str(exc)}
    if customer is None:
        label = ID_TYPE_LABELS[IdType(id_type)]
        return {"status": "not_found", "message": f"No customer has this {label.lower()}."}
    membership = queries.membership_of(audience.pk, customer.pk)
    return {
        "status": "member" if membership else "not_member",
        "customer": customer,
        "membership": membership,
    }


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def audience_members_change(request: HttpRequest, pk: int) -> HttpResponse:
    """Add or remove pasted identifiers: resolve them, then ONE membership service call.
    A GET (a bookmarked or reloaded result) goes to the audience page."""
    audience = get_object_or_404(Audience.objects.select_related("created_by"), pk=pk)
    if request.method != "POST":
        return redirect("audiences:audience_detail", pk=audience.pk)
    form = MembersChangeForm(request.POST)
    result = None
    if form.is_valid():
        resolution = resolve_identifiers(form.cleaned_data["id_type"], form.cleaned_data["values"])
        adding = form.cleaned_data["action"] == "add"
        change = (
            services.add_customers_to_audience
            if adding
            else services.remove_customers_from_audience
        )
        ttl_days = form.cleaned_data.get("ttl_days")
        options: dict[str, Any] = {"ttl": timedelta(days=ttl_days)} if adding and ttl_days else {}
        try:
            operation = change(
                audience,
                resolution.customer_ids,
                actor=_actor(request),
                kind=OperationKind.UI,
                outcome=services.IdentifierOutcome(
                    not_found=len(resolution.not_found),
                    ambiguous=len(resolution.ambiguous),
                    invalid=len(resolution.invalid),
                ),
                **options,
            )
        except services.AudienceError as exc:
            _service_error(form, exc)
        else:
            label = ID_TYPE_LABELS[IdType(form.cleaned_data["id_type"])]
            result = {"operation": operation, "resolution": resolution, "id_label": label}
            audience.refresh_from_db()
            form = MembersChangeForm(initial={"id_type": form.cleaned_data["id_type"]})
    context = _detail_context(request, audience, change_form=form, result=result)
    return render(request, "audiences/audience_detail.html", context)


def _ttl_form(audience: Audience, data: Any = None) -> MemberTtlForm:
    return MemberTtlForm(data, initial={"member_ttl_days": audience.member_ttl_days})


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def audience_expiry(request: HttpRequest, pk: int) -> HttpResponse:
    """Set or clear the audience's default time-to-live (the "Membership expiry" box of its
    page): ONE service call. A GET (a reloaded result) goes to the audience page."""
    audience = get_object_or_404(Audience.objects.select_related("created_by"), pk=pk)
    if request.method != "POST":
        return redirect("audiences:audience_detail", pk=audience.pk)
    form = _ttl_form(audience, request.POST)
    if form.is_valid():
        try:
            days = form.cleaned_data["member_ttl_days"]
            services.set_audience_member_ttl(audience, days, actor=_actor(request))
        except services.AudienceError as exc:
            _service_error(form, exc)
        else:
            done = f"removed {days:,} days after they are added" if days else "kept until removed"
            messages.success(request, f"From now on, added members are {done}.")
            return _go(request, reverse("audiences:audience_detail", args=[audience.pk]))
    context = _detail_context(request, audience, ttl_form=form)
    return render(request, "audiences/audience_detail.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def operation_undo(request: HttpRequest, pk: int) -> HttpResponse:
    operation = get_object_or_404(Operation.objects.select_related("audience"), pk=pk)
    back = (
        reverse("audiences:audience_detail", args=[operation.audience_id])
        if operation.audience_id
        else reverse("audiences:audience_list")
    )
    if request.method == "POST":
        try:
            undo = services.undo_operation(operation, actor=_actor(request))
        except services.AudienceError as exc:
            messages.error(request, exc.message)
        else:
            if undo.action == "replace":
                done = f"{undo.added:,} customers restored, {undo.removed:,} removed"
            elif undo.action == "add":
                done = f"{undo.added:,} customers restored"
            else:
                done = f"{undo.removed:,} customers removed"
            messages.success(request, f"Operation #{operation.pk} undone: {done}.")
        return _go(request, back)
    template = _template(request, "audiences/operation_undo.html", {"modal": "dialog"})
    return render(request, template, {"operation": operation, "back": back})


@require_safe
@login_required
def audience_export(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Members as CSV, streamed in keyset batches (``audiences.exports``): one column of the
    chosen identifier (no header, as the page always gave it), or an ad platform's hashed
    customer list (with the header the platform requires)."""
    audience = get_object_or_404(Audience, pk=pk)
    form = ExportForm(request.GET)
    if not form.is_valid():
        messages.error(request, "Choose what to export.")
        return redirect("audiences:audience_detail", pk=audience.pk)
    export_format = form.cleaned_data["export_format"]
    if exports.is_personal(export_format) and not request.user.can_write:  # type: ignore[union-attr]
        raise PermissionDenied("Your role may not export personal data.")
    platform = export_format in exports.LAYOUTS
    rows = exports.member_rows(audience.pk, export_format, header=platform)
    # Ad platforms expect plain UTF-8 headers: the BOM is for identifier lists opened in Excel.
    bom = form.cleaned_data["bom"] and not platform
    response = StreamingHttpResponse(
        exports.csv_chunks(rows, bom=bom), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = content_disposition_header(
        True, exports.download_name(audience, export_format)
    )
    response["Cache-Control"] = "no-store"  # personal data: no copies in caches
    return response
