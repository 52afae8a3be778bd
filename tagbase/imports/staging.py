"""Set-based SQL over staged import rows; the one place where the engines differ for imports.

Rows are appended with ``executemany`` (SQLite) or ``COPY`` (PostgreSQL). Resolution is one
statement per identifier type: each staged row looks its value up through the customer
column's own index (a correlated subquery that also tells one match from several), so the
staging table needs no index but its primary key and rows can be appended in file order.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

from tagbase.lib.sqlbits import is_postgres

T = "imports_importrow"
COLUMNS = (
    "job_id",
    "line",
    "status",
    "reason",
    "value",
    "raw",
    "target_key",
    "customer_id",
    "sign",
)
# Which of a job's rows a target takes: (the target's sign, the job's sign for rows that name
# none), or None for every row (mode single, where no row names its action).
Signs = tuple[str, str] | None


def _sign_filter(signs: Signs, alias: str = "") -> tuple[str, list[str]]:
    if signs is None:
        return "", []
    return f" AND COALESCE({alias}sign, %s) = %s", [signs[1], signs[0]]


# Per identifier type: a scalar subquery giving the matching customer id, or -1 when several
# customers match. Column and table names are constants.
_MATCH = {
    "sc_id": None,  # staged with customer_id already set to the parsed id
    "external_id": f"SELECT MIN(c.sc_id) FROM customers_customer c WHERE c.external_id = {T}.value",
    "phone": (
        "SELECT CASE WHEN COUNT(*) > 1 THEN -1 ELSE MIN(c.sc_id) END "
        f"FROM customers_customer c WHERE c.phone = {T}.value"
    ),
    "email": (
        "SELECT CASE WHEN COUNT(*) > 1 THEN -1 ELSE MIN(c.sc_id) END "
        f"FROM customers_customer c WHERE c.email = {T}.value"
    ),
    "card": f"SELECT MIN(k.customer_id) FROM customers_card k WHERE k.number = {T}.value",
}


def insert_rows(rows: Sequence[tuple]) -> None:  # type: ignore[type-arg]
    """Append staged rows (tuples in COLUMNS order) inside the caller's transaction."""
    if not rows:
        return
    # The driver's own cursor is used for speed; wrap_database_errors turns the driver's errors
    # (a dropped connection during COPY, say) into Django's, which the pipeline retries.
    with connection.cursor() as cur, connection.wrap_database_errors:
        if is_postgres(connection):
            raw_cursor = cur.cursor  # the psycopg cursor under Django's wrapper
            with raw_cursor.copy(f"COPY {T} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            # The sqlite3 cursor directly: Django's wrapper would re-check every parameter row.
            marks = ", ".join(["?"] * len(COLUMNS))
            cur.cursor.executemany(f"INSERT INTO {T} ({', '.join(COLUMNS)}) VALUES ({marks})", rows)


def resolve_customers(job_id: int, id_type: str) -> None:
    """Set customer_id on candidate rows: the matching customer, NULL for none, -1 for
    several. Statuses are left alone (``classify_unresolved`` sets them after dedupe)."""
    with connection.cursor() as cur:
        match = _MATCH[id_type]
        if match is not None:
            cur.execute(
                f"UPDATE {T} SET customer_id = ({match}) "
                f"WHERE {T}.job_id = %s AND {T}.status = 'ok'",
                [job_id],
            )
        else:
            cur.execute(
                f"UPDATE {T} SET customer_id = NULL WHERE job_id = %s AND status = 'ok' "
                "AND NOT EXISTS (SELECT 1 FROM customers_customer c "
                f"WHERE c.sc_id = {T}.customer_id)",
                [job_id],
            )


def classify_unresolved(job_id: int) -> None:
    """Candidates that matched several customers become ``amb``, none ``nf``."""
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {T} SET status = 'amb', customer_id = NULL "
            "WHERE job_id = %s AND status = 'ok' AND customer_id = -1",
            [job_id],
        )
        cur.execute(
            f"UPDATE {T} SET status = 'nf' WHERE job_id = %s AND status = 'ok' "
            "AND customer_id IS NULL",
            [job_id],
        )


def resolved_rows(job_id: int, batch: int = 50_000):  # type: ignore[no-untyped-def]
    """Yield (line, customer_id) of resolved candidates in file order, a batch at a time."""
    after = -1
    while True:
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT line, customer_id FROM {T} WHERE job_id = %s AND status = 'ok' "
                "AND customer_id > 0 AND line > %s ORDER BY line LIMIT %s",
                [job_id, after, batch],
            )
            rows = cur.fetchall()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def max_resolved_customer(job_id: int) -> int:
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT MAX(customer_id) FROM {T} WHERE job_id = %s AND status = 'ok'", [job_id]
        )
        return int(cur.fetchone()[0] or 0)


def mark_lines(job_id: int, lines: list[int], status: str) -> None:
    from tagbase.lib.sqlbits import in_list, list_param

    with connection.cursor() as cur:
        for start in range(0, len(lines), 50_000):
            part = lines[start : start + 50_000]
            cur.execute(
                f"UPDATE {T} SET status = %s WHERE job_id = %s AND {in_list(connection, 'line')}",
                [status, job_id, list_param(connection, part)],
            )


def mark_duplicates(job_id: int, column: str, *, unresolved_only: bool = False) -> int:
    """Mark as ``dup`` every candidate row repeating an earlier row's (target, ``column``):
    the first occurrence in the file stays a candidate. ``column`` is 'value' (the same
    identifier) or 'customer_id' (another identifier of the same customer). With
    ``unresolved_only`` only rows that matched no single customer take part (the resolved ones
    are deduplicated by ``pipeline`` without sorting the whole file)."""
    assert column in {"value", "customer_id"}
    if column == "customer_id":
        extra = " AND customer_id > 0"  # NULL / -1 (none / several) are no customer to share
    elif unresolved_only:
        extra = " AND (customer_id IS NULL OR customer_id = -1)"
    else:
        extra = ""
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {T} SET status = 'dup' WHERE job_id = %s AND line IN ("
            "SELECT line FROM (SELECT line, ROW_NUMBER() OVER "
            f"(PARTITION BY target_key, {column} ORDER BY line) AS n "
            f"FROM {T} WHERE job_id = %s AND status = 'ok'{extra}) d WHERE d.n > 1)",
            [job_id, job_id],
        )
        return cur.rowcount


def mark_conflicts(job_id: int, default_sign: str) -> int:
    """Per-row files with a + / - column: every candidate row of a customer that the file both
    adds to and removes from the same audience becomes ``invalid`` with the reason
    ``conflicting_action`` — none of them is applied, whatever their order, since either
    reading of the file could be the one meant. Returns how many rows it marked."""
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {T} SET status = 'invalid', reason = 'conflicting_action' "
            "WHERE job_id = %s AND status = 'ok' AND customer_id > 0 "
            "AND (target_key, customer_id) IN ("
            f"SELECT target_key, customer_id FROM {T} "
            "WHERE job_id = %s AND status = 'ok' AND customer_id > 0 "
            "GROUP BY target_key, customer_id "
            "HAVING MIN(COALESCE(sign, %s)) <> MAX(COALESCE(sign, %s)))",
            [job_id, job_id, default_sign, default_sign],
        )
        return cur.rowcount


def count_by_status(job_id: int) -> dict[str, int]:
    with connection.cursor() as cur:
        cur.execute(f"SELECT status, COUNT(*) FROM {T} WHERE job_id = %s GROUP BY status", [job_id])
        return {status: int(n) for status, n in cur.fetchall()}


def count_candidates(job_id: int, target_key: str, signs: Signs = None) -> int:
    where, params = _sign_filter(signs)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(*) FROM {T} WHERE job_id = %s AND target_key = %s AND status = 'ok'"
            + where,
            [job_id, target_key, *params],
        )
        return int(cur.fetchone()[0])


def count_members_among_candidates(
    job_id: int, target_key: str, audience_id: int, signs: Signs = None
) -> int:
    """For a preview: how many candidates of a target are members of its audience now."""
    where, params = _sign_filter(signs, "r.")
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(*) FROM {T} r JOIN audiences_membership m "
            "ON m.audience_id = %s AND m.customer_id = r.customer_id "
            "WHERE r.job_id = %s AND r.target_key = %s AND r.status = 'ok'" + where,
            [audience_id, job_id, target_key, *params],
        )
        return int(cur.fetchone()[0])


def candidates_sql(
    job_id: int, target_key: str, signs: Signs = None
) -> tuple[str, tuple[object, ...]]:
    """The SELECT that hands a target's candidates to the audiences write path."""
    where, params = _sign_filter(signs)
    return (
        f"SELECT customer_id FROM {T} WHERE job_id = %s AND target_key = %s AND status = 'ok'"
        + where,
        (job_id, target_key, *params),
    )


def rejected_rows(job_id: int, batch: int = 10_000):  # type: ignore[no-untyped-def]
    """Yield (line, raw, value, status, reason) of rejected rows in file order, in batches."""
    after = -1
    while True:
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT line, raw, value, status, reason FROM {T} WHERE job_id = %s "
                "AND status <> 'ok' AND line > %s ORDER BY line LIMIT %s",
                [job_id, after, batch],
            )
            rows = cur.fetchall()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def delete_rows(job_id: int) -> None:
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {T} WHERE job_id = %s", [job_id])
