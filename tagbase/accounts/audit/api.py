"""``GET /api/v1/audit``: the audit log for admins and for tokens with the ``audit`` scope.

The same filters as the UI and the CLI (``audit.make_filter``), newest first, a page at a time
by keyset: pass the page's ``next_before`` as ``before`` for the next one. Pages never skip or
repeat an entry, however many are written meanwhile (new ones have higher ids).
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from tagbase.accounts import audit
from tagbase.accounts.auth import ApiError, Forbidden, SessionAuth, TokenAuth, error_responses
from tagbase.accounts.models import ApiToken, AuditEntry, Scope

router = Router()  # mounted at /audit

MAX_ID = 2**63 - 1
MAX_PAGE = 1000
# A token needs the audit scope (TokenAuth refuses it otherwise); a session needs the admin role.
AUDIT_READERS = [TokenAuth(Scope.AUDIT.value), SessionAuth()]

SummaryValue = str | int | float | bool | None


class AuditEntryOut(Schema):
    id: int
    at: datetime
    actor_kind: str = Field(description="user, token, system (CLI, worker, demo) or anonymous")
    actor: str = Field(description="A user name, token:<name>, or a system label (cli:<user>)")
    actor_user_id: int | None = Field(description="The user's id when actor_kind is user")
    actor_token_id: int | None = Field(description="The token's id when actor_kind is token")
    action: str = Field(description="<target>.<what happened>; the list is in docs/audit.md")
    target_type: str = Field(
        description="user, token, audience, import, segment, campaign or erasure"
    )
    target_id: int | None
    summary: dict[str, SummaryValue] = Field(
        description="Ids, counts, flags and names; never customer data"
    )

    @staticmethod
    def resolve_actor(entry: AuditEntry) -> str:
        return entry.actor_label


class AuditPage(Schema):
    items: list[AuditEntryOut]
    next_before: int | None = Field(
        description="Pass as ?before= for the next (older) page; null on the last page"
    )


@router.get("", response={200: AuditPage, **error_responses()}, auth=AUDIT_READERS)
def audit_list(
    request: HttpRequest,
    actor: str = Query("", max_length=150, description="Exactly this actor"),
    action: str = Query("", max_length=64, description="One action, or a group: segment."),
    target_type: str = Query("", max_length=32),
    target_id: int | None = Query(None, ge=1, le=MAX_ID),
    since: str = Query("", max_length=40, description="From this day or moment (ISO 8601)"),
    until: str = Query("", max_length=40, description="To this day (inclusive) or moment"),
    before: int | None = Query(None, ge=1, le=MAX_ID, description="Entries older than this id"),
    limit: int = Query(100, ge=1, le=MAX_PAGE, description=f"1 to {MAX_PAGE}"),
) -> dict[str, object]:
    """Audit entries, newest first. Admin sessions, or tokens with the `audit` scope."""
    principal = request.auth  # type: ignore[attr-defined]
    if not isinstance(principal, ApiToken) and not principal.is_admin:
        raise Forbidden("forbidden", "Only admins may read the audit log.")
    try:
        where = audit.make_filter(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            since=since,
            until=until,
        )
    except audit.InvalidAuditFilter as exc:
        raise ApiError(422, "validation_error", exc.message, field=exc.field) from None
    found = audit.find_entries(where)
    if before is not None:
        found = found.filter(pk__lt=before)
    rows = list(found[: limit + 1])  # one more than asked tells whether another page exists
    page = rows[:limit]
    return {"items": page, "next_before": page[-1].pk if len(rows) > limit else None}
