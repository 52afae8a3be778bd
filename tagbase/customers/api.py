"""REST endpoints for customers, receipts and events (the customer's audiences are in
audiences.api).

Handlers are thin: parse (the schemas), permission (`tagbase.accounts.auth`: the method
decides the scope), one service or query call, the response schema. Routes are declared in
URL-matching order: `/bulk` and `/lookup` before `/{sc_id}`.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Header, Path, Query, Router

from tagbase.accounts.auth import ApiError, Forbidden, actor_of, api_auth, error_responses
from tagbase.accounts.models import Scope, User
from tagbase.customers import queries, services
from tagbase.customers.erasure import ErasureBlocked, ErasureError
from tagbase.customers.models import Customer
from tagbase.customers.reports import LoadReport
from tagbase.customers.schemas import (
    CustomerOut,
    CustomersBulkIn,
    ErasureOut,
    EventsIn,
    LoadReportOut,
    ReceiptsBulkIn,
)
from tagbase.lib.identifiers import IdType

customers_router = Router()  # mounted at /customers
receipts_router = Router()  # mounted at /receipts
events_router = Router()  # mounted at /events
# Sending events needs the `events` scope, not `write`: a partner system (an app's back end)
# is given exactly that, on purpose, as file imports need `import`.
EVENT_SENDERS = api_auth(Scope.EVENTS.value)
# Erasing personal data needs its own scope, never given by `write`: a partner system that
# forwards erasure requests is given `erase` on purpose. A session must be an admin's.
ERASERS = api_auth(Scope.ERASE.value)
IDEMPOTENCY_KEY = Header(
    None,
    alias="Idempotency-Key",
    min_length=1,
    max_length=200,
    pattern=r"^[\x21-\x7e]+$",
    description="1-200 visible ASCII characters. Repeating the request with the same key "
    "returns the first answer (per token or user); the same key for another customer is 422.",
)

MAX_ID = 2**63 - 1  # largest BIGINT; a bigger id would overflow the database


@customers_router.post("/bulk", response={200: LoadReportOut, **error_responses(400, 413)})
def customers_bulk(request: HttpRequest, payload: CustomersBulkIn) -> LoadReport:
    """Create or update up to 10,000 customers. A row with a known `external_id` updates
    that customer (only the fields sent); bad rows are skipped and listed in `errors`."""
    rows = [row.as_row() for row in payload.customers]
    return services.upsert_customers(rows, actor=actor_of(request))


@customers_router.get("/lookup", response={200: CustomerOut, **error_responses(404, 409)})
def customer_lookup(
    request: HttpRequest,
    id_type: IdType,
    value: str = Query(..., min_length=1, max_length=400),
) -> Customer:
    """The customer an identifier names: 404 if none, 409 if several (a shared phone),
    422 if the value is not a valid identifier of that type."""
    customer = queries.find_customer(id_type, value)
    if customer is None:
        raise ApiError(404, "customer_not_found", f"No customer has this {id_type}.")
    return customer


@customers_router.get("/{sc_id}", response={200: CustomerOut, **error_responses(404)})
def customer_detail(
    request: HttpRequest, sc_id: int = Path(..., ge=1, le=MAX_ID, description="Customer id")
) -> Customer:
    """The customer's profile: identifiers, personal data, attributes, cards, receipt metrics."""
    customer = (
        Customer.objects.select_related("stats").prefetch_related("cards").filter(pk=sc_id).first()
    )
    if customer is None:
        raise ApiError(404, "customer_not_found", f"Customer {sc_id} does not exist.")
    return customer


@customers_router.post(
    "/{sc_id}/erase", response={200: ErasureOut, **error_responses(404, 409)}, auth=ERASERS
)
def customer_erase(
    request: HttpRequest,
    sc_id: int = Path(..., ge=1, le=MAX_ID, description="Customer id"),
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> dict[str, Any]:
    """Erase the customer's personal data everywhere (docs/privacy.md): removed from every
    audience (one `erasure` operation each), from stored import files, staged rows and
    rejected-rows reports, from campaign entries and outbox messages; cards, receipts, events
    and the customer itself deleted. Answers the erasure record (no personal data). Erasing an
    erased customer changes nothing and answers `already_erased: true`. Admins only: a token
    needs the `erase` scope, a session an admin's role. 409 `erasure_blocked` while a worker is
    processing an import whose file holds the customer (try again later)."""
    if isinstance(request.auth, User) and not request.auth.is_admin:  # type: ignore[attr-defined]
        raise Forbidden("forbidden", "Only an admin may erase a customer's personal data.")
    try:
        result = services.erase_customer(
            sc_id, actor=actor_of(request), idempotency_key=idempotency_key or ""
        )
    except ErasureError as exc:
        status = _ERASURE_STATUS.get(exc.code, 422)
        raise ApiError(status, exc.code, exc.message, field=exc.field) from None
    return ErasureOut.of(result.erasure, result.already_erased)


_ERASURE_STATUS = {
    services.CustomerNotFound.code: 404,
    ErasureBlocked.code: 409,
    services.ErasureIdempotencyConflict.code: 422,
}


@receipts_router.post("/bulk", response={200: LoadReportOut, **error_responses(400, 413)})
def receipts_bulk(request: HttpRequest, payload: ReceiptsBulkIn) -> LoadReport:
    """Create or update up to 10,000 receipts, keyed by (customer, number); the customers'
    receipt metrics are refreshed. Bad rows are skipped and listed in `errors`."""
    rows = [row.as_row() for row in payload.receipts]
    return services.load_receipts(rows, actor=actor_of(request))


@events_router.post(
    "", response={200: LoadReportOut, **error_responses(400, 413)}, auth=EVENT_SENDERS
)
def events_record(request: HttpRequest, payload: EventsIn) -> LoadReport:
    """Record up to 10,000 customer events (scope `events`). Events are a log: the same rows
    sent twice are recorded twice. Active campaigns with an `event_occurred` trigger let the
    matching customers in after the events are committed (a worker runs them). Bad rows are
    skipped and listed in `errors`."""
    rows = [row.as_row() for row in payload.events]
    return services.record_events(rows, actor=actor_of(request))
