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


def audience_by_name(name: str) -> Audience | None:
    """The audience whose name has the same key (trim + NFC + case-fold), or None."""
    from tagbase.lib.names import audience_name_key

    return Audience.objects.filter(name_key=audience_name_key(name)).first()


def member_ids_after(audience_id: int, after: int = 0, limit: int = 1000) -> list[int]:
    """Keyset page of member customer ids (ascending) after ``after``; uses the primary key."""
    return list(
        Membership.objects.filter(audience_id=audience_id, customer_id__gt=after)
        .order_by("customer_id")
        .values_list("customer_id", flat=True)[:limit]
    )


def members_page(audience_id: int, after: int = 0, limit: int = 50):  # type: ignore[no-untyped-def]
    """Keyset page of memberships with their customer and operation (two joins, one query)."""
    return (
        Membership.objects.filter(audience_id=audience_id, customer_id__gt=after)
        .select_related("customer", "operation")
        .order_by("customer_id")[:limit]
    )
