"""Pages of Customers → All customers and the customer profile, read only for every role; and
erasing a customer's personal data, for admins only (docs/privacy.md).

Thin entry points: parse the request, ask ``customers.queries``, render. The list answers an
htmx request aimed at its results (``HX-Target: results``) with only that part of the page.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe
from django_htmx.http import HttpResponseClientRedirect

from tagbase.accounts.actors import Actor
from tagbase.customers import services
from tagbase.customers.erasure import ErasureError
from tagbase.customers.forms import CustomerFilterForm
from tagbase.customers.models import Customer, CustomerStats
from tagbase.customers.profile import sections_for
from tagbase.customers.queries import customer_list as find_customers

RECENT_ROWS = 20


@require_safe
@login_required
def customer_list(request: HttpRequest) -> HttpResponse:
    form = CustomerFilterForm(request.GET)
    q, filters = form.search(), form.active_filters()
    customers = find_customers(q=q, filters=filters)
    page = Paginator(customers, settings.TAGBASE_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page_obj": page, "q": q, "filter_count": len(filters)}
    htmx = getattr(request, "htmx", None)
    partial = htmx and not htmx.history_restore_request and htmx.target == "results"
    template = "customers/customer_list.html" + ("#results" if partial else "")
    return render(request, template, context)


@require_safe
@login_required
def customer_detail(request: HttpRequest, sc_id: int) -> HttpResponse:
    customer = get_object_or_404(Customer, sc_id=sc_id)
    sections = [
        {"section": s, "html": render_to_string(s.template, s.context, request=request)}
        for s in sections_for(request, customer)
    ]
    context = {
        "customer": customer,
        "stats": CustomerStats.objects.filter(customer=customer).first(),
        "cards": list(customer.cards.order_by("-issued_at", "number")),
        "receipts": list(customer.receipts.order_by("-date", "-id")[:RECENT_ROWS]),
        "events": list(customer.events.order_by("-occurred_at", "-id")[:RECENT_ROWS]),
        "attributes": _attributes(customer.attributes),
        "sections": sections,
    }
    return render(request, "customers/customer_detail.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def customer_erase(request: HttpRequest, sc_id: int) -> HttpResponse:
    """Erase the customer's personal data (admins only): GET asks to confirm (a dialog with
    htmx), POST erases and goes back to the list."""
    if not request.user.is_admin:  # type: ignore[union-attr]
        raise PermissionDenied("Only an admin may erase a customer's personal data.")
    customer = get_object_or_404(Customer, sc_id=sc_id)
    if request.method == "POST":
        try:
            services.erase_customer(sc_id, actor=Actor.of_user(request.user))  # type: ignore[arg-type]
        except ErasureError as exc:
            messages.error(request, exc.message)
            return _go(request, reverse("customers:customer_detail", args=[sc_id]))
        messages.success(
            request,
            f"Customer {sc_id}: personal data erased. The ID stays in the history; nothing "
            "else about the customer does.",
        )
        return _go(request, reverse("customers:customer_list"))
    htmx = getattr(request, "htmx", None)
    dialog = htmx and not htmx.history_restore_request and htmx.target == "modal"
    template = "customers/customer_erase.html" + ("#dialog" if dialog else "")
    context = {
        "customer": customer,
        "cards": customer.cards.count(),
        "receipts": customer.receipts.count(),
        "events": customer.events.count(),
    }
    return render(request, template, context)


def _go(request: HttpRequest, url: str) -> HttpResponse:
    """Redirect; an htmx request (a form in a dialog) gets a full-page client redirect."""
    if getattr(request, "htmx", None):
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _attributes(value: Any) -> list[tuple[str, str]]:
    """Custom attributes as (name, text) pairs sorted by name; non-text values as JSON."""
    if not isinstance(value, dict):
        return [("value", _text(value))] if value not in (None, "", [], {}) else []
    return sorted((str(k), _text(v)) for k, v in value.items())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
