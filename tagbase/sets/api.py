"""REST endpoints for set operations and membership as of a date (docs/api.md "Set operations";
the contract in docs/sets.md). Mounted at /sets.

Handlers are thin: parse (the schemas), permission (`tagbase.accounts.auth`: the method decides
the scope), one service or query call, the response schema. Errors are raised as exceptions
(``SetError``) and rendered by `tagbase.api` as `{"error": {...}}`.

Who may do what:
- Every GET, and the previews (`POST /sets/preview`, `POST /sets/overlap`: they change nothing),
  need `read` or any session.
- `POST /sets/combine` needs `write`, or the session of a role that may write.
- The as-of CSV holds identifiers: a `read` token may export any type; an analyst's session only
  `sc_id` (analysts export no personal data, as for audiences).

Routes are declared in URL-matching order: fixed paths before parameters.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from django.http import HttpRequest, StreamingHttpResponse
from django.utils.http import content_disposition_header
from ninja import Header, Path, Query, Router, Status

from tagbase.accounts.auth import ApiError, Forbidden, actor_of, api_auth, error_responses
from tagbase.accounts.models import Scope, User
from tagbase.audiences.models import Audience
from tagbase.audiences.services import AudienceError
from tagbase.lib.csvsafe import csv_lines
from tagbase.lib.identifiers import IdType
from tagbase.sets import queries, services
from tagbase.sets.schemas import (
    MAX_ID,
    AsOfMemberPage,
    AsOfOut,
    SetCombineIn,
    SetJobOut,
    SetOverlapIn,
    SetPreviewIn,
    SetPreviewOut,
)

router = Router()  # mounted at /sets
READERS = api_auth(Scope.READ.value)  # a POST that only reads (the previews)

MAX_MEMBERS_PAGE = 10_000
PERSONAL_ID_TYPES = {IdType.EXTERNAL_ID, IdType.PHONE, IdType.EMAIL, IdType.CARD}
IDEMPOTENCY_KEY = Header(
    None,
    alias="Idempotency-Key",
    min_length=1,
    max_length=200,
    pattern=r"^[\x21-\x7e]+$",
    description="1-200 visible ASCII characters. Repeating a request with the same key "
    "returns the first job instead of making another (per token or user).",
)
AT = Query(
    ...,
    min_length=10,
    max_length=40,
    description="YYYY-MM-DD (the end of that day in TIME_ZONE) or an ISO 8601 date and time "
    "(without an offset: in TIME_ZONE); not in the future",
)
MEMBERS_CSV = {
    "200": {
        "description": "A header naming the identifier type, then one identifier a line",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


def _id(description: str) -> int:
    return Path(..., ge=1, le=MAX_ID, description=description)  # type: ignore[no-any-return]


# --- Previews and combine -----------------------------------------------------------------------


@router.post("/preview", response={200: SetPreviewOut, **error_responses(400, 413)}, auth=READERS)
def set_preview(request: HttpRequest, payload: SetPreviewIn) -> dict[str, Any]:
    """Evaluate an expression now without changing anything: the overlap of its operands
    (every region of their Venn diagram), the exact result count and, with `audience`, how
    many would be added and removed in `mode`. Needs only `read`."""
    shown = services.preview(payload.expression, mode=payload.mode, audience_id=payload.audience)
    return services.preview_summary(shown)


@router.post("/overlap", response={200: SetPreviewOut, **error_responses(400, 413)}, auth=READERS)
def set_overlap(request: HttpRequest, payload: SetOverlapIn) -> dict[str, Any]:
    """The overlap of 2 or 3 audiences or segments: every region of their Venn diagram, and
    their union as the result. Needs only `read`."""
    return services.preview_summary(services.overlap(payload.operands))


@router.post("/combine", response={202: SetJobOut, **error_responses(400, 404, 409, 413)})
def set_combine(
    request: HttpRequest, payload: SetCombineIn, idempotency_key: str | None = IDEMPOTENCY_KEY
) -> Status[dict[str, Any]]:
    """Put the expression's result into an audience as ONE undoable operation of kind `set`,
    run by a worker: a new audience (`new_audience_name`), or an existing one (`audience`) in
    `mode` add or replace. Answers 202 with the queued job, whose `expected_added` and
    `expected_removed` say what would change now; poll `GET /sets/jobs/{job_id}`."""
    try:
        job = services.combine(
            payload.expression,
            actor=actor_of(request),
            mode=payload.mode,
            audience_id=payload.audience,
            new_audience_name=payload.new_audience_name,
            idempotency_key=idempotency_key or "",
        )
    except AudienceError as exc:
        # Only the new audience can be refused here (its name); say which input that is.
        exc.field = "new_audience_name"
        raise
    return Status(202, queries.job_summary(job))


@router.get("/jobs/{job_id}", response={200: SetJobOut, **error_responses(404)})
def set_job_detail(request: HttpRequest, job_id: int = _id("Job id")) -> dict[str, Any]:
    """A combine job: poll it until `succeeded` or `failed`."""
    return queries.job_summary(services.get_job(job_id))


# --- Membership as of a date --------------------------------------------------------------------


@router.get("/as-of/{audience_id}", response={200: AsOfOut, **error_responses(404)})
def set_as_of(
    request: HttpRequest, audience_id: int = _id("Audience id"), at: str = AT
) -> dict[str, Any]:
    """How many customers were members of the audience at a past moment, reconstructed from
    its memberships, removal ledger and operations (the guarantee: docs/sets.md)."""
    found = services.as_of(_audience(audience_id).pk, services.parse_moment(at))
    return {
        "audience": found.audience.pk,
        "audience_name": found.audience.name,
        "at": found.at,
        "count": found.count,
    }


@router.get("/as-of/{audience_id}/members", response={200: AsOfMemberPage, **error_responses(404)})
def set_as_of_members(
    request: HttpRequest,
    audience_id: int = _id("Audience id"),
    at: str = AT,
    after: int = Query(0, ge=0, le=MAX_ID, description="Return members with sc_id > after"),
    limit: int = Query(1000, ge=1, le=MAX_MEMBERS_PAGE, description=f"1 to {MAX_MEMBERS_PAGE}"),
) -> dict[str, Any]:
    """The customers who were members at that moment, in ascending sc_id, a page at a time."""
    audience = _audience(audience_id)
    moment = services.parse_moment(at)
    # One row more than asked tells whether another page exists.
    ids = queries.page_as_of(audience.pk, moment, after, limit + 1)
    page = ids[:limit]
    return {
        "items": [{"sc_id": i} for i in page],
        "next_after": page[-1] if len(ids) > limit else None,
    }


@router.get(
    "/as-of/{audience_id}/members.csv",
    response=error_responses(404),
    openapi_extra={"responses": MEMBERS_CSV},
)
def set_as_of_members_csv(
    request: HttpRequest,
    audience_id: int = _id("Audience id"),
    at: str = AT,
    id_type: IdType = Query(IdType.SC_ID, description="Which identifier to export"),  # noqa: B008
) -> StreamingHttpResponse:
    """Those members as CSV of one identifier type (their identifiers now; formula-escaped),
    streamed in constant memory; members without that identifier are left out. Analysts'
    sessions may export only `sc_id`."""
    principal = request.auth  # type: ignore[attr-defined]
    if id_type in PERSONAL_ID_TYPES and isinstance(principal, User) and not principal.can_write:
        raise Forbidden("forbidden", "Your role may not export personal data; use sc_id.")
    audience = _audience(audience_id)
    moment = services.parse_moment(at)
    values = queries.identifiers_as_of(audience.pk, moment, id_type.value)
    rows = itertools.chain([[id_type.value]], ([v] for v in values))
    response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        True, f"audience-{audience.pk}-as-of-{_stamp(moment)}-{id_type.value}.csv"
    )
    response["Cache-Control"] = "no-store"  # personal data: no copies in caches
    return response


def _audience(audience_id: int) -> Audience:
    audience = Audience.objects.filter(pk=audience_id).first()
    if audience is None:
        raise ApiError(
            404, "audience_not_found", f"Audience {audience_id} does not exist.", field=None
        )
    return audience


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")
