"""REST endpoints for customers, receipts and events (the customer's audiences are in
audiences.api).

Handlers are thin: parse (the schemas), permission (`tagbase.accounts.auth`: the method
decides the scope), one service or query call, the response schema. Routes are declared in
URL-matching order: `/bulk` and `/lookup` before `/{sc_id}`.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Path, Query, Router

from tagbase.accounts.auth import ApiError, actor_of, api_auth, error_responses
from tagbase.accounts.models import Scope
from tagbase.customers import queries, services
from tagbase.customers.models import Customer
from tagbase.customers.reports import LoadReport
from tagbase.customers.schemas import (
    CustomerOut,
    CustomersBulkIn,
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
