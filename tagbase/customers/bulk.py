"""Set-based SQL for receipts and receipt metrics, where SQLite and PostgreSQL differ.

Only ``customers.services`` calls this module. Table and column names are constants; every value
is a parameter.

Money on SQLite: a DecimalField column has NUMERIC affinity there, so amounts are stored as
REAL and ``SUM(amount)`` would add binary fractions (0.1 + 0.2 != 0.3). SQLite therefore sums
whole cents (``ROUND(amount * 100)`` is exact for amounts below 10^13) and divides once at the
end; averages are rounded half away from zero on both engines (PostgreSQL's ``ROUND(numeric)``
and SQLite's ``ROUND`` agree on that), so both give the same cents as Python's
``Decimal.quantize(ROUND_HALF_UP)``. Django reads the REAL back through a 15-digit decimal
context and quantizes it to 2 places, which is exact for totals below 10^13.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection

from tagbase.lib.sqlbits import in_list, is_postgres, list_param, rows_of

S = "customers_customerstats"
R = "customers_receipt"

_COLUMNS = (
    "customer_id, receipt_count, total_amount, average_amount, average_items, "
    "first_receipt_at, last_receipt_at"
)
_UPDATE = (
    "ON CONFLICT (customer_id) DO UPDATE SET receipt_count = excluded.receipt_count, "
    "total_amount = excluded.total_amount, average_amount = excluded.average_amount, "
    "average_items = excluded.average_items, first_receipt_at = excluded.first_receipt_at, "
    "last_receipt_at = excluded.last_receipt_at"
)


def _aggregates() -> str:
    """The metric columns over receipts ``r`` grouped by customer."""
    if is_postgres(connection):
        return (
            "COUNT(*), SUM(r.amount), ROUND(AVG(r.amount), 2), ROUND(AVG(r.items), 2), "
            "MIN(r.date), MAX(r.date)"
        )
    cents = "SUM(CAST(ROUND(r.amount * 100) AS INTEGER))"
    return (
        f"COUNT(*), {cents} / 100.0, ROUND({cents} * 1.0 / COUNT(*)) / 100.0, "
        "ROUND(SUM(r.items) * 100.0 / COUNT(*)) / 100.0, MIN(r.date), MAX(r.date)"
    )


def _select_for(customer_ids: Sequence[int] | None) -> tuple[str, list[Any]]:
    """SELECT of (customer_id, metrics…) for these customers (every customer for None)."""
    if customer_ids is None:
        # SQLite needs a WHERE clause in INSERT … SELECT … ON CONFLICT, or reads ON as a join.
        select = f"SELECT r.customer_id, {_aggregates()} FROM {R} r WHERE true GROUP BY 1"
        return select, []
    param = [list_param(connection, customer_ids)]
    if is_postgres(connection):
        # A LATERAL aggregate per id: an index lookup per customer whatever the planner's
        # statistics say (a freshly loaded, not yet analysed table otherwise gets a full sort).
        return (
            "SELECT ids.value, a.n, a.total, ROUND(a.total / a.n, 2), "
            "ROUND(a.items::numeric / a.n, 2), a.first_at, a.last_at "
            f"FROM {rows_of(connection, 'ids')} CROSS JOIN LATERAL ("
            "SELECT COUNT(*) AS n, SUM(r.amount) AS total, SUM(r.items) AS items, "
            f"MIN(r.date) AS first_at, MAX(r.date) AS last_at FROM {R} r "
            "WHERE r.customer_id = ids.value) a WHERE a.n > 0"
        ), param
    return (
        f"SELECT r.customer_id, {_aggregates()} FROM {rows_of(connection, 'ids')} "
        f"JOIN {R} r ON r.customer_id = ids.value WHERE true GROUP BY r.customer_id"
    ), param


def upsert_stats(customer_ids: Sequence[int] | None, *, drop_empty: bool = True) -> int:
    """Recompute the stats rows of these customers (all customers for None) from their
    receipts in one statement; with ``drop_empty``, also drop the rows of those left without
    receipts (a load that only adds receipts skips that). Returns the stats rows written."""
    ids = None if customer_ids is None else sorted(set(customer_ids))  # a repeat would count twice
    select, params = _select_for(ids)
    with connection.cursor() as cur:
        if is_postgres(connection) and ids is not None:
            # Without statistics (a table just loaded) the planner overestimates this statement
            # and spends far longer compiling it with JIT than running it; the data it reads
            # is a few index lookups per customer.
            cur.execute("SET LOCAL jit = off")
        cur.execute(f"INSERT INTO {S} ({_COLUMNS}) {select} {_UPDATE}", params)
        written = cur.rowcount
        if drop_empty:
            _drop_empty(cur, ids)
    return written


def _drop_empty(cur, customer_ids: Sequence[int] | None) -> None:  # type: ignore[no-untyped-def]
    gone = f"NOT EXISTS (SELECT 1 FROM {R} r WHERE r.customer_id = {S}.customer_id)"
    if customer_ids is None:
        cur.execute(f"DELETE FROM {S} WHERE {gone}")
    else:
        cur.execute(
            f"DELETE FROM {S} WHERE {in_list(connection, 'customer_id')} AND {gone}",
            [list_param(connection, customer_ids)],
        )


def existing_receipts(pairs: Sequence[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which (customer id, receipt number) pairs already exist: one query on the unique index,
    the pairs passed as one parameter (two parallel arrays on PostgreSQL, a JSON array of
    pairs on SQLite)."""
    if not pairs:
        return set()
    if is_postgres(connection):
        source = "unnest(%s::bigint[], %s::text[]) AS p(c, n)"
        params: list[Any] = [[c for c, _ in pairs], [n for _, n in pairs]]
    else:
        source = (
            "(SELECT json_extract(value, '$[0]') AS c, json_extract(value, '$[1]') AS n "
            "FROM json_each(%s)) AS p"
        )
        params = [list_param(connection, [[c, n] for c, n in pairs])]
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT r.customer_id, r.number FROM {source} "
            f"JOIN {R} r ON r.customer_id = p.c AND r.number = p.n",
            params,
        )
        return {(int(c), str(n)) for c, n in cur.fetchall()}


# --- Erasure (docs/privacy.md) ------------------------------------------------------------------


@contextmanager
def secure_delete() -> Iterator[None]:
    """On SQLite, have the deletes and updates of the enclosed work overwrite the old content
    with zeros (``PRAGMA secure_delete``), so an erased customer's data does not linger in the
    database file's free space; the connection's previous setting is restored after. Nothing
    on PostgreSQL: there, freed space is reclaimed by VACUUM (docs/privacy.md)."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cur:
        cur.execute("PRAGMA secure_delete")
        before = int(cur.fetchone()[0])
        cur.execute("PRAGMA secure_delete = 1")
    try:
        yield
    finally:
        with connection.cursor() as cur:
            cur.execute(f"PRAGMA secure_delete = {1 if before else 0}")


def checkpoint_wal() -> None:
    """On SQLite, copy the write-ahead log into the database file and empty it, so that older
    copies of changed pages (which held the erased data) leave the log now rather than at the
    next automatic checkpoint. Best effort: readers still open keep what they are reading."""
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cur:
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
