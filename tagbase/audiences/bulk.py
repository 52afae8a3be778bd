"""Set-based SQL for memberships, the one place where SQLite and PostgreSQL differ.

Only ``audiences.services`` calls this module, inside its transaction and after it holds the
audience lock. Table and column names are constants; every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.db import connection

from tagbase.lib.sqlbits import chunked, in_list, is_postgres, list_param, rows_of

M = "audiences_membership"
R = "audiences_removedmembership"
C = "customers_customer"
A = "audiences_audience"


def chunks(ids: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    return chunked(ids, size)


def _dt(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _new_row(expires_at: datetime | None) -> tuple[str, str, list[Any]]:
    """The column list of a new membership, the extra SELECT item and its parameter. Without an
    expiry the statement is exactly the one an add has always run (no column, no parameter)."""
    if expires_at is None:
        return "(audience_id, customer_id, set_at, operation_id)", "", []
    return "(audience_id, customer_id, set_at, operation_id, expires_at)", ", %s", [_dt(expires_at)]


def insert_memberships(
    audience_id: int,
    ids: Sequence[int],
    now: datetime,
    operation_id: int,
    expires_at: datetime | None = None,
) -> tuple[int, int]:
    """Insert (audience, id) for each id that is a customer, with ``expires_at`` (None: no
    expiry). Returns (known, inserted)."""
    param = list_param(connection, ids)
    columns, extra, extra_params = _new_row(expires_at)
    with connection.cursor() as cur:
        if is_postgres(connection):
            # One pass over the ids: the customers found feed both the count and the insert.
            cur.execute(
                f"WITH known AS (SELECT c.sc_id FROM {rows_of(connection, 'j')} "
                f"JOIN {C} c ON c.sc_id = j.value), "
                f"ins AS (INSERT INTO {M} {columns} "
                f"SELECT %s, sc_id, %s, %s{extra} FROM known ON CONFLICT DO NOTHING RETURNING 1) "
                "SELECT (SELECT COUNT(*) FROM known), (SELECT COUNT(*) FROM ins)",
                [param, audience_id, _dt(now), operation_id, *extra_params],
            )
            known, inserted = cur.fetchone()
            return int(known), int(inserted)
        cur.execute(f"SELECT COUNT(*) FROM {C} WHERE {in_list(connection, 'sc_id')}", [param])
        known = cur.fetchone()[0]
        if not known:
            return 0, 0
        cur.execute(
            f"INSERT OR IGNORE INTO {M} {columns} "
            f"SELECT %s, c.sc_id, %s, %s{extra} FROM {rows_of(connection, 'j')} "
            f"JOIN {C} c ON c.sc_id = j.value",
            [audience_id, _dt(now), operation_id, *extra_params, param],
        )
        return known, cur.rowcount


def delete_memberships(
    audience_id: int, ids: Sequence[int], now: datetime, operation_id: int
) -> tuple[int, int]:
    """Move (audience, id) memberships to the ledger and delete them. Returns (known, removed)."""
    param = list_param(connection, ids)
    with connection.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {C} WHERE {in_list(connection, 'sc_id')}", [param])
        known = cur.fetchone()[0]
        if not known:
            return 0, 0
        where = f"m.audience_id = %s AND {in_list(connection, 'm.customer_id')}"
        removed = _move_to_ledger(cur, where, [audience_id, param], now, operation_id)
        return known, removed


def delete_memberships_set_by(
    audience_id: int, set_by_operation: int, now: datetime, operation_id: int
) -> int:
    """Move to the ledger and delete the audience's memberships still set by an operation."""
    with connection.cursor() as cur:
        where = "m.audience_id = %s AND m.operation_id = %s"
        return _move_to_ledger(cur, where, [audience_id, set_by_operation], now, operation_id)


def _move_to_ledger(  # type: ignore[no-untyped-def]
    cur,
    where: str,
    params: list,  # type: ignore[type-arg]
    now: datetime,
    operation_id: int,
    *,
    once_for: int | None = None,
) -> int:
    """Copy the memberships ``where`` chooses to the ledger, then delete them.

    ``once_for=audience_id`` promises this is the operation's only removal from that audience:
    SQLite then deletes the rows the ledger just received (found through its index on the
    operation) instead of evaluating ``where`` — a whole segment rule — a second time.
    """
    columns = "(audience_id, customer_id, set_at, set_by_id, expires_at, removed_at, removed_by_id)"
    if is_postgres(connection):
        cur.execute(
            f"WITH gone AS (DELETE FROM {M} m WHERE {where} "
            "RETURNING m.audience_id, m.customer_id, m.set_at, m.operation_id, m.expires_at) "
            f"INSERT INTO {R} {columns} "
            "SELECT audience_id, customer_id, set_at, operation_id, expires_at, %s, %s FROM gone",
            [*params, _dt(now), operation_id],
        )
        return cur.rowcount
    cur.execute(
        f"INSERT INTO {R} {columns} "
        "SELECT m.audience_id, m.customer_id, m.set_at, m.operation_id, m.expires_at, %s, %s "
        f"FROM {M} m WHERE {where}",
        [_dt(now), operation_id, *params],
    )
    moved = cur.rowcount
    if once_for is not None:
        cur.execute(
            f"DELETE FROM {M} WHERE audience_id = %s AND customer_id IN "
            f"(SELECT r.customer_id FROM {R} r WHERE r.removed_by_id = %s "
            "AND r.audience_id = %s)",
            [once_for, operation_id, once_for],
        )
    else:
        cur.execute(
            f"DELETE FROM {M} WHERE (audience_id, customer_id) IN "
            f"(SELECT m.audience_id, m.customer_id FROM {M} m WHERE {where})",
            params,
        )
    assert cur.rowcount == moved, "ledger and delete disagree inside one transaction"
    return moved


def restore_removed_by(audience_id: int, operation_id: int, now: datetime) -> int:
    """Put back the memberships an operation removed, as they were (original date and
    operation), skipping customers that no longer exist or are members again. An expiry still
    ahead of ``now`` comes back with them; one that has passed does not (the customer would be
    removed again at the next sweep — the undo of an ``expiry`` brings them back for good)."""
    conflict = "ON CONFLICT DO NOTHING" if is_postgres(connection) else ""
    verb = "INSERT" if is_postgres(connection) else "INSERT OR IGNORE"
    with connection.cursor() as cur:
        cur.execute(
            f"{verb} INTO {M} (audience_id, customer_id, set_at, operation_id, expires_at) "
            "SELECT r.audience_id, r.customer_id, r.set_at, r.set_by_id, "
            "CASE WHEN r.expires_at > %s THEN r.expires_at END "
            f"FROM {R} r JOIN {C} c ON c.sc_id = r.customer_id "
            f"WHERE r.audience_id = %s AND r.removed_by_id = %s {conflict}",
            [_dt(now), audience_id, operation_id],
        )
        return cur.rowcount


def change_selection(
    action: str,
    audience_id: int,
    select_sql: str,
    params: list,  # type: ignore[type-arg]
    now: datetime,
    operation_id: int,
    *,
    distinct: bool = False,
    customers_only: bool = False,
    expires_at: datetime | None = None,
) -> tuple[int, int, int]:
    """Add or remove the customers a SELECT (one column ``customer_id``) chooses. Two
    statements: one count of the distinct ids and of those that are customers, then the change
    itself, applied in customer-id order so index pages are filled in sequence. With
    ``customers_only`` the caller guarantees every id is a customer and the count skips the
    join. New members get ``expires_at`` (None: no expiry). Returns (distinct requested, known
    customers, changed)."""
    unique = "" if distinct else "DISTINCT "
    picked = f"SELECT {unique}s.customer_id FROM ({select_sql}) s WHERE s.customer_id IS NOT NULL"
    with connection.cursor() as cur:
        if customers_only:
            cur.execute(f"SELECT COUNT(*) FROM ({picked}) p", params)
            requested = known = int(cur.fetchone()[0])
        else:
            cur.execute(
                f"SELECT COUNT(*), COUNT(c.sc_id) FROM ({picked}) p "
                f"LEFT JOIN {C} c ON c.sc_id = p.customer_id",
                params,
            )
            requested, known = (int(n) for n in cur.fetchone())
        if not known:
            return requested, 0, 0
        if action == "add":
            verb = "INSERT" if is_postgres(connection) else "INSERT OR IGNORE"
            conflict = " ON CONFLICT DO NOTHING" if is_postgres(connection) else ""
            # When the count proved every id a customer, skip the join (the foreign key still
            # refuses a customer deleted meanwhile, failing the whole operation, never half).
            source = (
                f"({picked}) k WHERE k.customer_id IS NOT NULL"
                if known == requested
                else f"({picked}) k JOIN {C} c ON c.sc_id = k.customer_id"
            )
            columns, extra, extra_params = _new_row(expires_at)
            cur.execute(
                f"{verb} INTO {M} {columns} SELECT %s, k.customer_id, %s, %s{extra} "
                f"FROM {source} ORDER BY k.customer_id{conflict}",
                [audience_id, _dt(now), operation_id, *extra_params, *params],
            )
            return requested, known, cur.rowcount
        where = f"m.audience_id = %s AND m.customer_id IN ({picked})"
        removed = _move_to_ledger(
            cur, where, [audience_id, *params], now, operation_id, once_for=audience_id
        )
        return requested, known, removed


# The temporary table a staged selection is evaluated into (one per connection; see below).
STAGE = "audiences_selection_stage"


@contextmanager
def staged_selection(
    select_sql: str,
    params: list,  # type: ignore[type-arg]
    *,
    distinct: bool = False,
) -> Iterator[tuple[str, list]]:  # type: ignore[type-arg]
    """Evaluate a selection ONCE into a temporary table of distinct customer ids and yield a
    SELECT of that table, for a change that reads the selection more than once (a replace
    removes the members outside it, then adds it) or whose counts must agree with what it
    changes while other audiences change meanwhile. The selection may read the very audience
    being changed: it is evaluated before any row moves. ``distinct``: the caller guarantees
    each id once (no DISTINCT pass). The table is dropped at the end (on PostgreSQL also ON
    COMMIT DROP); a failed transaction rolls its creation back."""
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {STAGE}")
        if is_postgres(connection):
            cur.execute(
                f"CREATE TEMPORARY TABLE {STAGE} (customer_id bigint PRIMARY KEY) ON COMMIT DROP"
            )
        else:
            # An INTEGER PRIMARY KEY is the rowid: inserting in key order appends.
            cur.execute(f"CREATE TEMPORARY TABLE {STAGE} (customer_id INTEGER PRIMARY KEY)")
        unique = "" if distinct else "DISTINCT "
        cur.execute(
            f"INSERT INTO {STAGE} (customer_id) SELECT {unique}s.customer_id "
            f"FROM ({select_sql}) s WHERE s.customer_id IS NOT NULL ORDER BY 1",
            params,
        )
        if is_postgres(connection):
            cur.execute(f"ANALYZE {STAGE}")  # temporary tables are never auto-analysed
    yield f"SELECT customer_id FROM {STAGE}", []
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {STAGE}")


def remove_outside(
    audience_id: int,
    select_sql: str,
    params: list,  # type: ignore[type-arg]
    now: datetime,
    operation_id: int,
) -> int:
    """Move to the ledger and delete the audience's members that the selection (a staged one:
    it is read once per member) does not contain. Returns how many left."""
    with connection.cursor() as cur:
        where = (
            "m.audience_id = %s AND NOT EXISTS "
            f"(SELECT 1 FROM ({select_sql}) keep WHERE keep.customer_id = m.customer_id)"
        )
        return _move_to_ledger(
            cur, where, [audience_id, *params], now, operation_id, once_for=audience_id
        )


# --- Expiry (docs/expiry.md) -------------------------------------------------------------------
#
# Every statement below reads only rows with an expiry, through the partial index
# membership_expiry_idx (audience_id, expires_at) WHERE expires_at IS NOT NULL.


def has_expiring(audience_id: int) -> bool:
    """Whether any member of the audience has an expiry (one probe of the partial index)."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT 1 FROM {M} WHERE audience_id = %s AND expires_at IS NOT NULL LIMIT 1",
            [audience_id],
        )
        return cur.fetchone() is not None


def renew_expiry(
    audience_id: int,
    customers_where: str,
    params: list,  # type: ignore[type-arg]
    expires_at: datetime | None,
) -> int:
    """A fresh add of customers who are members already restarts their clock: each expiring
    membership among the customers ``customers_where`` chooses (a condition on
    ``customer_id``) gets ``expires_at`` if that is later, or none at all if the add has none.
    An add never shortens a membership. ``set_at`` and the setting operation stay. Returns the
    memberships renewed."""
    if expires_at is None:
        sql = f"UPDATE {M} SET expires_at = NULL WHERE audience_id = %s AND expires_at IS NOT NULL"
        values: list[Any] = [audience_id]
    else:
        sql = (
            f"UPDATE {M} SET expires_at = %s WHERE audience_id = %s AND expires_at IS NOT NULL "
            "AND expires_at < %s"
        )
        values = [_dt(expires_at), audience_id, _dt(expires_at)]
    with connection.cursor() as cur:
        cur.execute(f"{sql} AND {customers_where}", [*values, *params])
        return cur.rowcount


def renew_expiry_of_ids(audience_id: int, ids: Sequence[int], expires_at: datetime | None) -> int:
    return renew_expiry(
        audience_id,
        in_list(connection, "customer_id"),
        [list_param(connection, ids)],
        expires_at,
    )


def renew_expiry_of_selection(
    audience_id: int,
    select_sql: str,
    params: list,  # type: ignore[type-arg]
    expires_at: datetime | None,
) -> int:
    where = f"customer_id IN (SELECT s.customer_id FROM ({select_sql}) s)"
    return renew_expiry(audience_id, where, params, expires_at)


def audiences_with_due(cutoff: datetime) -> list[int]:
    """Ids of the audiences with a membership expired at ``cutoff``: one probe of the partial
    index per audience (the audiences table is small; the memberships are not)."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT a.id FROM {A} a WHERE EXISTS (SELECT 1 FROM {M} m WHERE m.audience_id = a.id "
            "AND m.expires_at IS NOT NULL AND m.expires_at <= %s) ORDER BY a.id",
            [_dt(cutoff)],
        )
        return [int(row[0]) for row in cur.fetchall()]


def has_due(audience_id: int, cutoff: datetime) -> bool:
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT 1 FROM {M} WHERE audience_id = %s AND expires_at IS NOT NULL "
            "AND expires_at <= %s LIMIT 1",
            [audience_id, _dt(cutoff)],
        )
        return cur.fetchone() is not None


def remove_due(audience_id: int, cutoff: datetime, now: datetime, operation_id: int) -> int:
    """Move the audience's memberships expired at ``cutoff`` to the ledger and delete them, as
    the operation's only removal from that audience. Returns how many left."""
    with connection.cursor() as cur:
        where = "m.audience_id = %s AND m.expires_at IS NOT NULL AND m.expires_at <= %s"
        return _move_to_ledger(
            cur, where, [audience_id, _dt(cutoff)], now, operation_id, once_for=audience_id
        )


def delete_all_memberships(audience_id: int) -> int:
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {M} WHERE audience_id = %s", [audience_id])
        return cur.rowcount


def count_drift() -> list[tuple[int, str, int, int]]:
    """Audiences whose stored member_count differs from COUNT(*) of their rows."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT a.id, a.name, a.member_count, COALESCE(m.n, 0) FROM {A} a "
            f"LEFT JOIN (SELECT audience_id, COUNT(*) AS n FROM {M} GROUP BY audience_id) m "
            "ON m.audience_id = a.id WHERE a.member_count <> COALESCE(m.n, 0) ORDER BY a.id"
        )
        return [(int(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in cur.fetchall()]
