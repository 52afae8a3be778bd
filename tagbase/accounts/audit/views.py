"""Admin → Audit log: the list with its filters, and the same entries as CSV.

Admins only: anonymous visitors are sent to the login page, other roles get 403, like every
page outside a role. Thin entry points: the form parses the filters, ``audit.find_entries``
reads, the template renders.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_safe

from tagbase.accounts import audit
from tagbase.accounts.audit.forms import AuditFilterForm, known_actors
from tagbase.accounts.models import AuditEntry
from tagbase.lib.csvsafe import csv_lines

CSV_COLUMNS = ["id", "at", "actor_kind", "actor", "action", "target_type", "target_id", "summary"]

# The page of each kind of target and the model that tells whether it still exists, by name:
# accounts sits below these apps and imports none of them (users and tokens have no page yet).
_TARGET_PAGES = {
    "audience": ("audiences:audience_detail", "audiences.Audience"),
    "segment": ("segments:segment_detail", "segments.Segment"),
    "campaign": ("campaigns:campaign_detail", "campaigns.Campaign"),
    "import": ("imports:import_detail", "imports.ImportJob"),
}


def admin_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Log in first (anonymous users are redirected), then refuse every role but admin."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_admin:  # type: ignore[union-attr]
            raise PermissionDenied("Only admins may read the audit log.")
        return view(request, *args, **kwargs)

    return login_required(wrapped)


@require_safe
@admin_required
def audit_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    entries = audit.find_entries(form.audit_filter())
    page = Paginator(entries, settings.TAGBASE_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = _shown(list(page.object_list))
    context = {
        "form": form,
        "page_obj": page,
        "filter_count": form.active_count(),
        "actors": known_actors(),
    }
    htmx = getattr(request, "htmx", None)
    partial = htmx and not htmx.history_restore_request and htmx.target == "results"
    return render(request, "accounts/audit_list.html" + ("#results" if partial else ""), context)


def _shown(entries: list[AuditEntry]) -> list[AuditEntry]:
    """Labels, and a link to each target that still exists (one query per target type)."""
    live: dict[str, set[int]] = {}
    for kind, (_, model) in _TARGET_PAGES.items():
        wanted = {e.target_id for e in entries if e.target_type == kind and e.target_id}
        if wanted:
            found = apps.get_model(model).objects.filter(pk__in=wanted)
            live[kind] = set(found.values_list("pk", flat=True))
    for e in entries:
        e.action_label = audit.ACTIONS.get(e.action, "")  # type: ignore[attr-defined]
        e.target_label = audit.TARGET_TYPES.get(e.target_type, e.target_type)  # type: ignore[attr-defined]
        linked = e.target_id in live.get(e.target_type, ())
        url = _TARGET_PAGES[e.target_type][0] if linked else ""
        e.target_url = reverse(url, args=[e.target_id]) if url else ""  # type: ignore[attr-defined]
    return entries


@require_safe
@admin_required
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered entries, newest first, as CSV (formula-escaped), streamed in constant
    memory; the summary is one JSON column."""
    entries = audit.find_entries(AuditFilterForm(request.GET).audit_filter())
    response = StreamingHttpResponse(
        csv_lines(_csv_rows(entries.iterator(chunk_size=2000))),
        content_type="text/csv; charset=utf-8",
    )
    name = f"audit-{timezone.localtime():%Y%m%d-%H%M%S}.csv"
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Cache-Control"] = "no-store"
    return response


def _csv_rows(entries: Iterator[AuditEntry]) -> Iterator[list[object]]:
    yield list(CSV_COLUMNS)
    for e in entries:
        yield [
            e.pk,
            timezone.localtime(e.at).isoformat(),
            e.actor_kind,
            e.actor_label,
            e.action,
            e.target_type,
            e.target_id,
            json.dumps(e.summary, ensure_ascii=False, sort_keys=True),
        ]
