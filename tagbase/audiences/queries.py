"""Scoped reads of audiences, memberships and operations."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import F, OrderBy, QuerySet

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
    return [{"audience": m.audience, "set_at": m.set_at, "operation": m.operation} for m in rows]


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


# --- Web UI reads (audience list search/sort, member lookup, export) ------------------------

AUDIENCE_SORTS: dict[str, tuple[str | OrderBy, ...]] = {
    "name": ("name_key", "id"),
    "-name": ("-name_key", "-id"),
    "count": ("member_count", "name_key", "id"),
    "-count": ("-member_count", "name_key", "id"),
    # Audiences never set (no date) sort as the oldest in either direction.
    "date": (F("last_set_at").asc(nulls_first=True), "name_key", "id"),
    "-date": (F("last_set_at").desc(nulls_last=True), "name_key", "id"),
}


def search_audiences(q: str = "", sort: str = "name") -> QuerySet[Audience]:
    """Audiences whose name contains ``q`` compared by name key (case, Unicode form and spacing
    folded, as uniqueness is), ordered by one of ``AUDIENCE_SORTS`` (unknown: by name)."""
    from tagbase.lib.names import audience_name_key

    found = Audience.objects.all()
    key = audience_name_key(q) if q else ""
    if key:
        found = found.filter(name_key__contains=key)
    return found.order_by(*AUDIENCE_SORTS.get(sort, AUDIENCE_SORTS["name"]))


def membership_of(audience_id: int, customer_id: int) -> Membership | None:
    """The membership of one customer in one audience with the operation that set it, or None."""
    return (
        Membership.objects.filter(audience_id=audience_id, customer_id=customer_id)
        .select_related("operation")
        .first()
    )


_EXPORT_COLUMNS = {
    "external_id": "customer__external_id",
    "phone": "customer__phone",
    "email": "customer__email",
}


def iter_member_identifiers(audience_id: int, id_type: str, batch: int = 2000) -> Iterator[str]:
    """Each member's identifier of type ``id_type`` in customer id order, read in keyset batches
    so memory stays constant however large the audience. Members without a value of that type
    (no valid phone, no e-mail…) are left out; for ``card``, every active card of the member."""
    from tagbase.customers.models import Card, CardStatus

    after = 0
    while True:
        if id_type in _EXPORT_COLUMNS:
            rows = list(
                Membership.objects.filter(audience_id=audience_id, customer_id__gt=after)
                .order_by("customer_id")
                .values_list("customer_id", _EXPORT_COLUMNS[id_type])[:batch]
            )
            if not rows:
                return
            after = rows[-1][0]
            yield from (value for _, value in rows if value)
            continue
        ids = member_ids_after(audience_id, after, batch)
        if not ids:
            return
        after = ids[-1]
        if id_type == "sc_id":
            yield from (str(i) for i in ids)
        elif id_type == "card":
            yield from (
                Card.objects.filter(customer_id__in=ids, status=CardStatus.ACTIVE)
                .order_by("customer_id", "number")
                .values_list("number", flat=True)
            )
        else:
            raise ValueError(f"unknown identifier type {id_type!r}")
