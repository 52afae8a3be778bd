"""Scoped reads of audiences, memberships and operations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import F, OrderBy, QuerySet

from tagbase.audiences.models import Audience, Membership, Operation, RemovedMembership


def audience_list() -> QuerySet[Audience]:
    return Audience.objects.order_by("name_key")


def customer_memberships(customer_id: int) -> list[dict[str, object]]:
    """The customer's audiences with the date and operation that set each, and the expiry of
    each membership (None: until removed) (one query).

    Only the columns the profile and the API show are read (the audience's id and name, the
    operation's id, kind and actor label): at 200 audiences that makes the query and its
    model instances about twice as fast (bench/README.md, the pages benchmark). Another field
    of ``audience`` or ``operation`` would cost one query per row: add it here instead."""
    rows = (
        Membership.objects.filter(customer_id=customer_id)
        .select_related("audience", "operation")
        .only(
            "set_at",
            "expires_at",
            "audience__id",
            "audience__name",
            "operation__id",
            "operation__kind",
            "operation__actor_label",
        )
        .order_by("audience__name_key")
    )
    return [
        {
            "audience": m.audience,
            "set_at": m.set_at,
            "operation": m.operation,
            "expires_at": m.expires_at,
        }
        for m in rows
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


# --- Membership as of a past moment ---------------------------------------------------------
#
# The history is reconstructed from what the write path keeps (docs/sets.md "Membership as of
# a date" states the guarantee). Each stay of a customer in an audience is exactly one row:
# a current membership (still there) or a removal-ledger row (ended at ``removed_at``). A stay
# starts at its ``set_at`` — the time of the add that set it — except when an undo restored
# it: a restored row keeps the original ``set_at`` and ``set_by``, so its real start is the
# time of that undo. The rows that share (audience, customer, set_at, set_by) descend from one
# add; each one after the first was restored by the undo of the operation that ended the one
# before it. So a stay started later than moment T exactly when a sibling ledger row's
# remover was undone after T (and, for a stay that ended, by an undo older than its end).

_M = "audiences_membership"
_R = "audiences_removedmembership"
_O = "audiences_operation"
_C = "customers_customer"


def members_as_of_sql(audience_id: int, at: datetime) -> tuple[str, list[Any]]:
    """``SELECT customer_id`` of the customers who were members of the audience at the instant
    ``at`` — after every operation on it timed at or before ``at`` — and still exist. Set-based:
    one pass over the audience's memberships and ledger rows, an index probe per candidate."""
    t = connection.ops.adapt_datetimefield_value(at)
    sql = (
        # The stays restored after T, by which undo: few, found from the audience's undos
        # after T (index on the audience's operations by time, then the ledger by remover).
        "WITH late AS MATERIALIZED ("
        f"SELECT y.customer_id, y.set_at, y.set_by_id, u.id AS undo_id FROM {_O} u "
        f"JOIN {_R} y ON y.removed_by_id = u.undoes_id "
        "WHERE u.audience_id = %s AND u.created_at > %s AND y.audience_id = %s) "
        "SELECT x.customer_id FROM ("
        f"SELECT r.customer_id, r.set_at, r.set_by_id, r.removed_by_id AS end_op FROM {_R} r "
        "WHERE r.audience_id = %s AND r.set_at <= %s AND r.removed_at > %s "
        "UNION ALL "
        f"SELECT m.customer_id, m.set_at, m.operation_id, CAST(NULL AS bigint) FROM {_M} m "
        "WHERE m.audience_id = %s AND m.set_at <= %s"
        f") x JOIN {_C} c ON c.sc_id = x.customer_id "
        # Not restored after T: no sibling whose remover was undone after T (and before the
        # end of this stay). An anti-join in FROM, not NOT EXISTS: SQLite then indexes `late`
        # once instead of scanning it for every candidate.
        "LEFT JOIN late l ON l.customer_id = x.customer_id AND l.set_at = x.set_at "
        "AND COALESCE(l.set_by_id, 0) = COALESCE(x.set_by_id, 0) "
        "AND (x.end_op IS NULL OR l.undo_id < x.end_op) "
        "WHERE l.customer_id IS NULL"
    )
    return sql, [audience_id, t, audience_id, audience_id, t, t, audience_id, t]


def count_members_as_of(audience_id: int, at: datetime) -> int:
    sql, params = members_as_of_sql(audience_id, at)
    with connection.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM ({sql}) q", params)
        return int(cur.fetchone()[0])


def member_ids_as_of(audience_id: int, at: datetime, after: int = 0, limit: int = 50) -> list[int]:
    """Keyset page of the customer ids who were members at ``at``, ascending, after ``after``."""
    sql, params = members_as_of_sql(audience_id, at)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT q.customer_id FROM ({sql}) q WHERE q.customer_id > %s "
            "ORDER BY q.customer_id LIMIT %s",
            [*params, after, limit],
        )
        return [int(row[0]) for row in cur.fetchall()]


def iter_identifiers_as_of(
    audience_id: int, at: datetime, id_type: str, batch: int = 2000
) -> Iterator[str]:
    """The identifiers of type ``id_type`` (as the customers have them now) of the customers
    who were members at ``at``, in customer id order, streamed from one server-side cursor so
    memory stays constant. Customers without a value of that type are left out; for ``card``,
    every active card."""
    from tagbase.customers.models import CardStatus

    sql, params = members_as_of_sql(audience_id, at)
    if id_type == "sc_id":
        query = f"SELECT q.customer_id FROM ({sql}) q ORDER BY q.customer_id"
    elif id_type == "card":
        query = (
            f"SELECT k.number FROM ({sql}) q JOIN customers_card k ON k.customer_id = "
            "q.customer_id AND k.status = %s ORDER BY q.customer_id, k.number"
        )
        params = [*params, str(CardStatus.ACTIVE)]
    elif id_type in _EXPORT_COLUMNS:
        column = _EXPORT_COLUMNS[id_type].removeprefix("customer__")
        query = (
            f"SELECT c2.{column} FROM ({sql}) q JOIN {_C} c2 ON c2.sc_id = q.customer_id "
            f"WHERE c2.{column} IS NOT NULL AND c2.{column} <> '' ORDER BY q.customer_id"
        )
    else:
        raise ValueError(f"unknown identifier type {id_type!r}")
    with connection.chunked_cursor() as cur:
        cur.execute(query, params)
        while rows := cur.fetchmany(batch):
            yield from (str(row[0]) for row in rows)
