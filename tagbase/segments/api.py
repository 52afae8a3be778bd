"""REST endpoints for user segments (docs/api.md "Segments"; the rules in docs/segments.md).

Handlers are thin: parse (the schemas), permission (`tagbase.accounts.auth`: the method decides
the scope), one service or query call, the response schema. Errors are raised as exceptions
(``SegmentError``, ``RuleError``) and rendered by `tagbase.api` as `{"error": {...}}`.

Who may do what:
- Every GET, and ``POST /segments/preview`` (it changes nothing), needs `read` or any session.
- Other POSTs, PATCH and DELETE need `write`, or the session of a role that may write.
- The members CSV holds identifiers: a `read` token may export any type; an analyst's session
  only `sc_id` (analysts export no personal data, as for audiences in the UI).

Routes are declared in URL-matching order: the fixed paths (`fields`, `preview`, `jobs/…`) come
before `/{segment_id}`.
"""

from __future__ import annotations

import itertools
from typing import Any

from django.http import HttpRequest, StreamingHttpResponse
from django.utils.http import content_disposition_header
from ninja import Header, Path, Query, Router, Status

from tagbase.accounts.auth import Forbidden, actor_of, api_auth, error_responses
from tagbase.accounts.models import Scope, User
from tagbase.audiences.schemas import SearchText
from tagbase.audiences.services import AudienceError
from tagbase.lib.csvsafe import csv_lines
from tagbase.lib.identifiers import IdType
from tagbase.lib.names import audience_name_key
from tagbase.segments import queries, services
from tagbase.segments.catalogue import catalogue_json
from tagbase.segments.models import Segment
from tagbase.segments.rules import to_json, validate
from tagbase.segments.schemas import (
    MAX_ID,
    FieldCatalogue,
    IncludeIn,
    JobOut,
    NameText,
    PreviewIn,
    PreviewOut,
    SegmentCreateIn,
    SegmentMemberPage,
    SegmentOut,
    SegmentPage,
    SegmentUpdateIn,
)

router = Router()  # mounted at /segments
READERS = api_auth(Scope.READ.value)  # a POST that only reads (preview)

MAX_PAGE = 1000
MAX_MEMBERS_PAGE = 10_000
MAX_OFFSET = 10**9  # keeps OFFSET + LIMIT inside a BIGINT
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
MEMBERS_CSV = {
    "200": {
        "description": "A header naming the identifier type, then one identifier a line",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


def _id(description: str) -> int:
    return Path(..., ge=1, le=MAX_ID, description=description)  # type: ignore[no-any-return]


def _limit(default: int, maximum: int) -> int:
    return Query(default, ge=1, le=maximum, description=f"1 to {maximum}")  # type: ignore[no-any-return]


# --- Fixed paths ------------------------------------------------------------------------------


@router.get("/fields", response={200: FieldCatalogue, **error_responses()})
def segment_fields(request: HttpRequest) -> dict[str, Any]:
    """The catalogue of fields a rule may use: by group, with type, parameters, choices and
    operators (what the builder shows)."""
    return {"groups": catalogue_json()}


@router.post("/preview", response={200: PreviewOut, **error_responses(400, 413)}, auth=READERS)
def segment_preview(request: HttpRequest, payload: PreviewIn) -> dict[str, Any]:
    """Evaluate a rule now without saving it: its summary, the five metrics and the first
    members. Needs only `read`. 422 naming the place when the rule is invalid."""
    shown = services.preview(payload.rules, sample=payload.sample, segment_id=payload.segment_id)
    m = shown.metrics
    return {
        "rules": to_json(shown.rules),
        "summary": shown.summary,
        "metrics": {
            "customers": m.customers,
            "percent_customers": m.percent_customers,
            "percent_revenue": m.percent_revenue,
            "average_receipt": m.average_receipt,
            "total_value": m.total_value,
            "as_of": shown.at,
        },
        "sample": shown.sample,
    }


@router.get("/jobs/{job_id}", response={200: JobOut, **error_responses(404)})
def segment_job_detail(request: HttpRequest, job_id: int = _id("Job id")) -> dict[str, Any]:
    """An "include in a target audience" job: poll it until `succeeded` or `failed`."""
    return queries.job_summary(services.get_job(job_id))


# --- Segments ---------------------------------------------------------------------------------


@router.get("", response={200: SegmentPage, **error_responses()})
def segment_list(
    request: HttpRequest,
    q: SearchText = "",
    limit: int = _limit(50, MAX_PAGE),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> dict[str, Any]:
    """Segments by name with their last metrics (`as_of` says when they were computed)."""
    found = Segment.objects.order_by("name_key", "pk")
    key = audience_name_key(q) if q else ""
    if key:
        found = found.filter(name_key__contains=key)
    return {
        "items": [_segment_row(s) for s in found[offset : offset + limit]],
        "count": found.count(),
        "limit": limit,
        "offset": offset,
    }


@router.post("", response={201: SegmentOut, **error_responses(400, 409, 413)})
def segment_create(request: HttpRequest, payload: SegmentCreateIn) -> Status[dict[str, Any]]:
    """Save a rule as a segment; its metrics are computed at once. 409 when the name is taken;
    422 naming the place when the rule is invalid."""
    segment = services.create_segment(
        payload.name, payload.rules, actor=actor_of(request), description=payload.description
    )
    return Status(201, _segment_out(segment))


@router.get("/{segment_id}", response={200: SegmentOut, **error_responses(404)})
def segment_detail(request: HttpRequest, segment_id: int = _id("Segment id")) -> dict[str, Any]:
    return _segment_out(_segment(segment_id))


@router.patch("/{segment_id}", response={200: SegmentOut, **error_responses(400, 404, 409, 413)})
def segment_update(
    request: HttpRequest, payload: SegmentUpdateIn, segment_id: int = _id("Segment id")
) -> dict[str, Any]:
    """Change the name, description and/or rule. A new rule is checked (422; `segment_cycle`
    when it would use this segment through others) and the metrics recomputed."""
    segment = services.update_segment(
        _segment(segment_id),
        actor=actor_of(request),
        name=payload.name,
        rules=payload.rules,
        description=payload.description,
    )
    return _segment_out(segment)


@router.delete("/{segment_id}", response={204: None, **error_responses(404, 409)})
def segment_delete(request: HttpRequest, segment_id: int = _id("Segment id")) -> Status[None]:
    """Delete a segment. 409 `segment_in_use` while other segments' rules use it. Audiences
    it was included in keep their members; its jobs stay readable."""
    services.delete_segment(_segment(segment_id), actor=actor_of(request))
    return Status(204, None)


@router.post("/{segment_id}/duplicate", response={201: SegmentOut, **error_responses(404, 409)})
def segment_duplicate(
    request: HttpRequest,
    segment_id: int = _id("Segment id"),
    name: NameText | None = None,
) -> Status[dict[str, Any]]:
    """Copy a segment, named "<name> (copy)" (then "(copy 2)"…) unless `?name=` is given."""
    copy = services.duplicate_segment(_segment(segment_id), actor=actor_of(request), name=name)
    return Status(201, _segment_out(copy))


@router.post("/{segment_id}/refresh", response={200: SegmentOut, **error_responses(404)})
def segment_refresh(request: HttpRequest, segment_id: int = _id("Segment id")) -> dict[str, Any]:
    """Recompute the five metrics now (workers also do it every
    TAGBASE_SEGMENT_METRICS_SECONDS)."""
    return _segment_out(services.refresh_metrics(_segment(segment_id)))


# --- Members ----------------------------------------------------------------------------------


@router.get("/{segment_id}/members", response={200: SegmentMemberPage, **error_responses(404)})
def segment_members(
    request: HttpRequest,
    segment_id: int = _id("Segment id"),
    after: int = Query(0, ge=0, le=MAX_ID, description="Return members with sc_id > after"),
    limit: int = _limit(1000, MAX_MEMBERS_PAGE),
) -> dict[str, Any]:
    """The members now, in ascending sc_id, a page at a time (keyset: pass `next_after`)."""
    tree = validate(_segment(segment_id).rules)
    # One row more than asked tells whether another page exists.
    rows = queries.member_page(tree, after=after, size=limit + 1)
    page = rows[:limit]
    return {
        "items": [{"sc_id": c.sc_id} for c in page],
        "next_after": page[-1].sc_id if len(rows) > limit else None,
    }


@router.get(
    "/{segment_id}/members.csv",
    response=error_responses(404),
    openapi_extra={"responses": MEMBERS_CSV},
)
def segment_members_csv(
    request: HttpRequest,
    segment_id: int = _id("Segment id"),
    id_type: IdType = Query(IdType.SC_ID, description="Which identifier to export"),  # noqa: B008
) -> StreamingHttpResponse:
    """The members now as CSV of one identifier type (formula-escaped), streamed; members
    without that identifier are left out. Analysts' sessions may export only `sc_id`."""
    principal = request.auth  # type: ignore[attr-defined]
    if id_type in PERSONAL_ID_TYPES and isinstance(principal, User) and not principal.can_write:
        raise Forbidden("forbidden", "Your role may not export personal data; use sc_id.")
    segment = _segment(segment_id)
    values = queries.iter_identifiers(validate(segment.rules), id_type.value)
    rows = itertools.chain([[id_type.value]], ([v] for v in values))
    response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        True, f"segment-{segment.pk}-{id_type.value}.csv"
    )
    response["Cache-Control"] = "no-store"  # personal data: no copies in caches
    return response


# --- Include in a target audience -------------------------------------------------------------


@router.post(
    "/{segment_id}/audience", response={202: JobOut, **error_responses(400, 404, 409, 413)}
)
def segment_to_audience(
    request: HttpRequest,
    payload: IncludeIn,
    segment_id: int = _id("Segment id"),
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Status[dict[str, Any]]:
    """Add the segment's members to an audience (or remove them from it) as one undoable
    operation of kind `segment`, run by a worker: answers 202 with the queued job, whose
    `expected` is how many would change now; poll `GET /segments/jobs/{job_id}`."""
    segment = _segment(segment_id)
    try:
        job = services.include_in_audience(
            segment,
            action=payload.action,
            actor=actor_of(request),
            audience_id=payload.audience,
            new_audience_name=payload.new_audience_name,
            idempotency_key=idempotency_key or "",
        )
    except AudienceError as exc:
        # Only the new audience can be refused here (its name); say which input that is.
        exc.field = "new_audience_name"
        raise
    return Status(202, queries.job_summary(job))


# --- Helpers ----------------------------------------------------------------------------------


def _segment(segment_id: int) -> Segment:
    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:
        raise services.SegmentNotFound(f"Segment {segment_id} does not exist.")
    return segment


def _metrics(segment: Segment) -> dict[str, Any]:
    return {
        "customers": segment.customers,
        "percent_customers": segment.percent_customers,
        "percent_revenue": segment.percent_revenue,
        "average_receipt": segment.average_receipt,
        "total_value": segment.total_value,
        "as_of": segment.metrics_at,
    }


def _segment_row(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.pk,
        "name": segment.name,
        "description": segment.description,
        "metrics": _metrics(segment),
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
    }


def _segment_out(segment: Segment) -> dict[str, Any]:
    return {
        **_segment_row(segment),
        "rules": segment.rules,
        "summary": services.summary(segment),
        "uses": list(segment.uses or []),
    }
