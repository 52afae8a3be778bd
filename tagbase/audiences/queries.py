"""Scoped reads of audiences, memberships and operations."""

from __future__ import annotations

from django.db.models import QuerySet

from tagbase.audiences.models import Audience, Membership, Operation, RemovedMembership


def audience_list() -> QuerySet[Audience]:
    return Audience.objects.order_by("name_key")


def customer_memberships(customer_id: int) -> list[dict[str, object]]:
    """The customer's audiences with the date and operation that set each (one query)."""
    rows = (
        Membership.objects.filter(customer_id=customer_id)
        .select_related("audience", "operation")
        .order_by("audience__name_key")
    )
    return [
        {"audience": m.audience, "set_at": m.set_at, "operation": m.operation} for m in rows
    ]


def customer_membership_history(customer_id: int, limit: int = 50) -> list[dict[str, object]]:
    """Removals of this customer from audiences, newest first."""
    rows = (
        RemovedMembership.objects.filter(customer_id=customer_id)
        .select_related("audience", "removed_by", "set_by")
        .order_by("-removed_at")[:limit]
    )
    return [
        {
            "audience": r.audience if r.audience_id else None,
            "set_at": r.set_at,
            "set_by": r.set_by,
            "removed_at": r.removed_at,
            "removed_by": r.removed_by,
        }
        for r in rows
    ]


def audience_operations(audience_id: int) -> QuerySet[Operation]:
    return Operation.objects.filter(audience_id=audience_id).select_related("actor")
