"""Set-based SQL for the campaign engine: entries, tokens and passages for many customers at once.

Only ``campaigns.engine`` calls this module, inside its transaction and while it holds the
campaign's row lock. Table and column names are constants; every value is a parameter. A list of
ids travels as ONE parameter (``lib.sqlbits``: a PostgreSQL array or a JSON array SQLite unpacks
with ``json_each``), so no statement grows with the number of customers and none is run per
customer. The same statements run on both engines; only ``lib.sqlbits`` differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from tagbase.audiences.services import CustomerSelection
from tagbase.lib.sqlbits import chunked, list_param, rows_of

E = "campaigns_entry"
T = "campaigns_token"
P = "campaigns_passage"
C = "customers_customer"
# Ids per list parameter: a step holds at most TAGBASE_CAMPAIGN_STEP_SIZE customers; a bigger
# step's lists are written in several statements of this size.
CHUNK = 100_000


def _dt(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def selection_of(customer_ids: Iterable[int]) -> CustomerSelection:
    """A list of ids as a selection (one list parameter); duplicates and ids that are no
    customer are allowed (they are counted and skipped when entering)."""
    ids = sorted({int(i) for i in customer_ids})
    return CustomerSelection(
        f"SELECT j.value AS customer_id FROM {rows_of(connection, 'j')}",
        (list_param(connection, ids),),
        distinct=True,
    )


def insert_entries(
    campaign_id: int,
    batch_id: int,
    version: int,
    selection: CustomerSelection,
    reentry_days: int | None,
    now: datetime,
) -> tuple[int, int]:
    """Write one ``Entry`` per customer of the selection whom the re-entry interval lets in
    (``reentry_days``: 0 any time, N not within N days of an earlier entry, None never again).
    Returns (distinct ids offered, customers entered)."""
    unique = "" if selection.distinct else "DISTINCT "
    picked = (
        f"SELECT {unique}s.customer_id FROM ({selection.sql}) s WHERE s.customer_id IS NOT NULL"
    )
    params: list[Any] = list(selection.params)
    with connection.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM ({picked}) p", params)
        requested = int(cur.fetchone()[0])
        if not requested:
            return 0, 0
        source = (
            f"({picked}) k"
            if selection.customers_only
            else f"({picked}) k JOIN {C} c ON c.sc_id = k.customer_id"
        )
        # Re-entry: 0 lets anyone in; N keeps out who entered within N days; None, who ever did.
        where, extra = "", []
        if reentry_days != 0:
            recent = ""
            if reentry_days is not None:
                recent = " AND e.entered_at > %s"
                extra.append(_dt(now - timedelta(days=reentry_days)))
            where = (
                f" WHERE NOT EXISTS (SELECT 1 FROM {E} e WHERE e.campaign_id = %s "
                f"AND e.customer_id = k.customer_id{recent})"
            )
            extra.insert(0, campaign_id)
        cur.execute(
            f"INSERT INTO {E} (campaign_id, customer_id, batch_id, version, entered_at) "
            f"SELECT %s, k.customer_id, %s, %s, %s FROM {source}{where} ORDER BY k.customer_id",
            [campaign_id, batch_id, version, _dt(now), *params, *extra],
        )
        return requested, int(cur.rowcount)


def tokens_from_entries(campaign_id: int, batch_id: int, node: str, due_at: datetime) -> int:
    """A token at ``node`` for every customer who entered with the batch."""
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {T} (campaign_id, batch_id, node, customer_id, due_at) "
            f"SELECT %s, %s, %s, e.customer_id, %s FROM {E} e WHERE e.batch_id = %s "
            "ORDER BY e.customer_id",
            [campaign_id, batch_id, node, _dt(due_at), batch_id],
        )
        return int(cur.rowcount)


def take_tokens(campaign_id: int, node: str, batch_id: int, now: datetime, limit: int) -> list[int]:
    """Delete the due tokens at ``node`` of one batch of the ``limit`` lowest customer ids (all
    of a customer's tokens there, so a customer who arrived by two branches runs the node once)
    and return those customers, sorted and distinct. What the DELETE returns is exactly what it
    consumed.

    Two statements, both range scans of the token index (campaign, node, batch, customer): the
    highest customer id of the step, then the DELETE up to it. (One DELETE … IN (SELECT … LIMIT)
    lets PostgreSQL, whose statistics do not know the tokens just written, plan a nested loop
    that rescans the subquery for every token: minutes for 100,000 tokens.)"""
    due = "campaign_id = %s AND node = %s AND batch_id = %s AND due_at <= %s"
    key = [campaign_id, node, batch_id, _dt(now)]
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT MAX(t.customer_id) FROM (SELECT DISTINCT customer_id FROM {T} "
            f"WHERE {due} ORDER BY customer_id LIMIT %s) t",
            [*key, limit],
        )
        last = cur.fetchone()[0]
        if last is None:
            return []
        cur.execute(
            f"DELETE FROM {T} WHERE {due} AND customer_id <= %s RETURNING customer_id",
            [*key, last],
        )
        return sorted({int(row[0]) for row in cur.fetchall()})


def insert_tokens(
    campaign_id: int, batch_id: int, node: str, customer_ids: Sequence[int], due_at: datetime
) -> None:
    """A token at ``node`` for each customer (ids of a step: customers by construction)."""
    with connection.cursor() as cur:
        for part in chunked(customer_ids, CHUNK):
            cur.execute(
                f"INSERT INTO {T} (campaign_id, batch_id, node, customer_id, due_at) "
                f"SELECT %s, %s, %s, j.value, %s FROM {rows_of(connection, 'j')}",
                [campaign_id, batch_id, node, _dt(due_at), list_param(connection, part)],
            )


def insert_passages(step_id: int, port: str, customer_ids: Sequence[int]) -> None:
    """One ``Passage`` per customer: they passed step run ``step_id`` and left by ``port``."""
    with connection.cursor() as cur:
        for part in chunked(customer_ids, CHUNK):
            cur.execute(
                f"INSERT INTO {P} (step_id, customer_id, port) "
                f"SELECT %s, j.value, %s FROM {rows_of(connection, 'j')}",
                [step_id, port, list_param(connection, part)],
            )
