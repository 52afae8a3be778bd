"""REST endpoints for audiences, their members, operations, and a customer's audiences.

Handlers are thin: parse (the schemas), permission (`tagbase.accounts.auth`: the method
decides the scope), one service or query call, the response schema. Errors are raised as
exceptions and rendered by `tagbase.api` as `{"error": {...}}`.

Routes are declared in URL-matching order: fixed segments (`members/add`) come before the
parameter that would otherwise swallow them (`members/{sc_id}`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils.http import content_disposition_header
from ninja import Path, Query, Router, Status

from tagbase.accounts.auth import ApiError, Forbidden, actor_of, error_responses, source_ref_of
from tagbase.accounts.models import User
from tagbase.audiences import exports, queries, services
from tagbase.audiences.exports import Platform
from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.audiences.schemas import (
    MAX_ID,
    MEMBERS_CSV,
    AudienceCreateIn,
    AudienceOut,
    AudiencePage,
    AudienceUpdateIn,
    CustomerAudiences,
    MemberPage,
    MembersAddIn,
    MembersChangeIn,
    MembersChangeOut,
    MembershipOut,
    OperationOut,
    OperationPage,
    SearchText,
    operation_fields,
)
from tagbase.customers.models import Customer
from tagbase.customers.queries import Resolution, resolve_identifiers
from tagbase.lib.identifiers import ID_TYPE_LABELS, IdType

router = Router()  # mounted at /audiences
operations_router = Router()  # mounted at /operations
customer_router = Router()  # mounted at /customers, beside the customers app's own router

MAX_PAGE = 1000
MAX_MEMBERS_PAGE = 10_000
MAX_OFFSET = 10**9  # keeps OFFSET + LIMIT inside a BIGINT


def _id(description: str) -> int:
    return Path(..., ge=1, le=MAX_ID, description=description)  # type: ignore[no-any-return]


def _limit(default: int, maximum: int) -> int:
    return Query(default, ge=1, le=maximum, description=f"1 to {maximum}")  # type: ignore[no-any-return]


def _offset() -> int:
    return Query(0, ge=0, le=MAX_OFFSET)  # type: ignore[no-any-return]


# --- Audiences --------------------------------------------------------------------------------


@router.get("", response={200: AudiencePage, **error_responses()})
def audience_list(
    request: HttpRequest,
    q: SearchText = "",
    limit: int = _limit(50, MAX_PAGE),
    offset: int = _offset(),
) -> dict[str, object]:
    """Audiences by name with their member count and the date a customer was last added."""
    found = queries.search_audiences(q)
    return {
        "items": list(found[offset : offset + limit]),
        "count": found.count(),
        "limit": limit,
        "offset": offset,
    }


@router.post("", response={201: AudienceOut, **error_responses(400, 409, 413)})
def audience_create(request: HttpRequest, payload: AudienceCreateIn) -> Status[Audience]:
    """Create an empty audience, optionally with a default time-to-live of its memberships
    (`member_ttl_days`). 409 when the name is taken (after trimming and case-folding)."""
    audience = services.create_audience(
        payload.name,
        actor=actor_of(request),
        description=payload.description,
        member_ttl_days=payload.member_ttl_days,
    )
    return Status(201, audience)


@router.get("/{audience_id}", response={200: AudienceOut, **error_responses(404)})
def audience_detail(request: HttpRequest, audience_id: int = _id("Audience id")) -> Audience:
    return _audience(audience_id)


@router.patch("/{audience_id}", response={200: AudienceOut, **error_responses(400, 404, 409, 413)})
def audience_update(
    request: HttpRequest, payload: AudienceUpdateIn, audience_id: int = _id("Audience id")
) -> Audience:
    """Rename an audience, change its description and/or its default time-to-live
    (`member_ttl_days`: for adds from now on; null clears it). Members are unchanged."""
    audience = _audience(audience_id)
    if payload.name is not None or payload.description is not None:
        audience = services.rename_audience(
            audience,
            payload.name if payload.name is not None else audience.name,
            actor=actor_of(request),
            description=payload.description,
        )
    if payload.changes_ttl:
        audience = services.set_audience_member_ttl(
            audience, payload.member_ttl_days, actor=actor_of(request)
        )
    return audience


@router.delete("/{audience_id}", response={204: None, **error_responses(404)})
def audience_delete(request: HttpRequest, audience_id: int = _id("Audience id")) -> Status[None]:
    """Delete an audience and its memberships; its operations stay in the history."""
    services.delete_audience(_audience(audience_id), actor=actor_of(request))
    return Status(204, None)


# --- Members ----------------------------------------------------------------------------------


@router.get("/{audience_id}/members", response={200: MemberPage, **error_responses(404)})
def audience_members(
    request: HttpRequest,
    audience_id: int = _id("Audience id"),
    after: int = Query(0, ge=0, le=MAX_ID, description="Return members with sc_id > after"),
    limit: int = _limit(1000, MAX_MEMBERS_PAGE),
) -> dict[str, object]:
    """Members in ascending sc_id, a page at a time (keyset: pages never skip or repeat)."""
    _ensure_audience(audience_id)
    # One row more than asked tells whether another page exists.
    rows = list(
        queries.members_page(audience_id, after, limit + 1).values_list(
            "customer_id", "set_at", "operation_id", "expires_at"
        )
    )
    page = rows[:limit]
    return {
        "items": [
            {"sc_id": c, "set_at": s, "operation_id": o, "expires_at": e} for c, s, o, e in page
        ],
        "next_after": page[-1][0] if len(rows) > limit else None,
    }


@router.get(
    "/{audience_id}/members.csv",
    response=error_responses(404),
    openapi_extra={"responses": MEMBERS_CSV},
)
def audience_members_csv(
    request: HttpRequest,
    audience_id: int = _id("Audience id"),
    id_type: IdType | None = Query(  # noqa: B008
        None, description="Which identifier to export (default sc_id)"
    ),
    platform: Platform | None = Query(  # noqa: B008
        None, description="An ad platform's customer list instead: hashed e-mail and phone"
    ),
    bom: bool = Query(False, description="Start with a UTF-8 byte-order mark (for Excel)"),
) -> StreamingHttpResponse:
    """Every member, streamed in constant memory with no row limit (docs/exports.md): one
    identifier type, or an ad platform's layout (`platform=google` or `meta`). Cells are
    formula-escaped. Analysts' sessions may export only `sc_id`."""
    if id_type is not None and platform is not None:
        raise ApiError(
            422, "validation_error", "Give id_type or platform, not both.", field="platform"
        )
    if platform is not None and bom:
        raise ApiError(
            422, "validation_error", "Ad-platform files are plain UTF-8: no BOM.", field="bom"
        )
    export_format = str(platform or id_type or IdType.SC_ID)
    principal = request.auth  # type: ignore[attr-defined]
    if (
        exports.is_personal(export_format)
        and isinstance(principal, User)
        and not principal.can_write
    ):
        raise Forbidden("forbidden", "Your role may not export personal data; use sc_id.")
    audience = _audience(audience_id)
    rows = exports.member_rows(audience.pk, export_format)
    response = StreamingHttpResponse(
        exports.csv_chunks(rows, bom=bom), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = content_disposition_header(
        True, exports.download_name(audience, export_format)
    )
    response["Cache-Control"] = "no-store"  # personal data: no copies in caches
    return response


@router.post(
    "/{audience_id}/members/add", response={200: MembersChangeOut, **error_responses(400, 404, 413)}
)
def audience_members_add(
    request: HttpRequest, payload: MembersAddIn, audience_id: int = _id("Audience id")
) -> dict[str, object]:
    """Add customers named by identifiers, as one recorded operation (`kind` = api); with
    `ttl_days`, the memberships it sets or renews expire that many days later."""
    ttl = timedelta(days=payload.ttl_days) if payload.ttl_days else None
    return _change_members(
        request, audience_id, payload, services.add_customers_to_audience, ttl=ttl
    )


@router.post(
    "/{audience_id}/members/remove",
    response={200: MembersChangeOut, **error_responses(400, 404, 413)},
)
def audience_members_remove(
    request: HttpRequest, payload: MembersChangeIn, audience_id: int = _id("Audience id")
) -> dict[str, object]:
    """Remove customers named by identifiers, as one recorded operation (`kind` = api)."""
    return _change_members(request, audience_id, payload, services.remove_customers_from_audience)


@router.get("/{audience_id}/members/{sc_id}", response={200: MembershipOut, **error_responses(404)})
def audience_member_detail(
    request: HttpRequest, audience_id: int = _id("Audience id"), sc_id: int = _id("Customer id")
) -> Membership:
    """Is this customer in this audience? 200 with when and by which operation, else 404."""
    found = queries.membership_of(audience_id, sc_id)
    if found is not None:
        return found
    _ensure_audience(audience_id)
    raise ApiError(
        404, "not_member", f"Customer {sc_id} is not a member of audience {audience_id}."
    )


def _change_members(
    request: HttpRequest,
    audience_id: int,
    payload: MembersChangeIn,
    change: Callable[..., Operation],
    **options: object,
) -> dict[str, object]:
    resolution = resolve_identifiers(payload.id_type, payload.ids)
    op = change(
        audience_id,
        resolution.customer_ids,
        actor=actor_of(request),
        kind=OperationKind.API,
        source_ref=source_ref_of(request),
        outcome=services.IdentifierOutcome(
            not_found=len(resolution.not_found),
            ambiguous=len(resolution.ambiguous),
            invalid=len(resolution.invalid),
        ),
        **options,
    )
    return {
        **operation_fields(op),
        "matched": resolution.matched,
        "duplicates": resolution.duplicates,
        "rejected": _rejected(resolution),
    }


def _rejected(resolution: Resolution) -> list[dict[str, str]]:
    """Every input value that named no single customer, with why, so the caller can fix it."""
    label = ID_TYPE_LABELS[resolution.id_type]
    if not label.startswith("Tagbase"):  # "Phone" reads "phone" mid-sentence; the name stays
        label = label[0].lower() + label[1:]
    return [
        *(
            {"value": v, "reason": "not_found", "message": f"No customer has this {label}."}
            for v in resolution.not_found
        ),
        *(
            {
                "value": v,
                "reason": "ambiguous",
                "message": f"More than one customer has this {label}; use another identifier.",
            }
            for v in resolution.ambiguous
        ),
        *({"value": r.value, "reason": r.code, "message": r.message} for r in resolution.invalid),
    ]


# --- A customer's audiences -------------------------------------------------------------------


@customer_router.get(
    "/{sc_id}/audiences", response={200: CustomerAudiences, **error_responses(404)}
)
def customer_audiences(request: HttpRequest, sc_id: int = _id("Customer id")) -> dict[str, object]:
    """The customer's audiences with when and by which operation the customer was set."""
    rows = queries.customer_memberships(sc_id)
    if not rows and not Customer.objects.filter(pk=sc_id).exists():
        raise ApiError(404, "customer_not_found", f"Customer {sc_id} does not exist.")
    return {
        "items": [
            {
                "audience_id": row["audience"].pk,  # type: ignore[attr-defined]
                "name": row["audience"].name,  # type: ignore[attr-defined]
                "set_at": row["set_at"],
                "operation_id": row["operation"].pk if row["operation"] else None,  # type: ignore[attr-defined]
                "expires_at": row["expires_at"],
            }
            for row in rows
        ]
    }


# --- Operations -------------------------------------------------------------------------------


@operations_router.get("", response={200: OperationPage, **error_responses()})
def operation_list(
    request: HttpRequest,
    audience_id: int | None = Query(None, ge=1, le=MAX_ID),
    kind: OperationKind | None = None,
    limit: int = _limit(50, MAX_PAGE),
    offset: int = _offset(),
) -> dict[str, object]:
    """Operations, newest first, optionally of one audience and/or one kind."""
    found = _operations_matching(audience_id, kind)
    return {
        "items": list(found[offset : offset + limit]),
        "count": found.count(),
        "limit": limit,
        "offset": offset,
    }


@operations_router.get("/{operation_id}", response={200: OperationOut, **error_responses(404)})
def operation_detail(request: HttpRequest, operation_id: int = _id("Operation id")) -> Operation:
    return _operation(operation_id)


@operations_router.post(
    "/{operation_id}/undo", response={200: OperationOut, **error_responses(404, 409)}
)
def operation_undo(request: HttpRequest, operation_id: int = _id("Operation id")) -> Operation:
    """Revert what the operation did that still stands, as a new `undo` operation.
    409 `cannot_undo` when it was undone already, is an undo, or its audience is gone."""
    return services.undo_operation(_operation(operation_id), actor=actor_of(request))


# --- Reads (candidates for audiences.queries) -------------------------------------------------


def _audience(audience_id: int) -> Audience:
    audience = Audience.objects.filter(pk=audience_id).first()
    if audience is None:
        raise services.AudienceNotFound(f"Audience {audience_id} does not exist.")
    return audience


def _ensure_audience(audience_id: int) -> None:
    if not Audience.objects.filter(pk=audience_id).exists():
        raise services.AudienceNotFound(f"Audience {audience_id} does not exist.")


def _operations_matching(audience_id: int | None, kind: str | None) -> QuerySet[Operation]:
    found = Operation.objects.order_by("-created_at", "-id")
    if audience_id is not None:
        found = found.filter(audience_id=audience_id)
    if kind:
        found = found.filter(kind=kind)
    return found


def _operation(operation_id: int) -> Operation:
    operation = Operation.objects.filter(pk=operation_id).first()
    if operation is None:
        raise ApiError(404, "operation_not_found", f"Operation {operation_id} does not exist.")
    return operation
