"""The segment benchmark's measured processes: Tagbase's own code, and the plain-SQL baseline.

One process per measurement (``bench.segment_bench`` starts them through ``bench.measure``, so
that each one's wall time and peak RSS are its own):

    python -m bench.segment_child tagbase  preview|add|remove [--audience NAME] [--repeats N]
    python -m bench.segment_child baseline preview|add|remove [--audience NAME] [--repeats N]
                                          (--sqlite PATH | --postgres URL)

**tagbase** runs the real code with Django set up from the environment (DATABASE_URL,
TAGBASE_DATA_DIR): ``segments.services.preview`` (the count, the five metrics and the first 20
members, what *Select* shows), and "Include in a target audience" as the UI and the API do it —
``services.include_in_audience`` (which counts the change for the dialog and creates the job)
then ``pipeline.run_segment_job`` (what the worker runs: claim, evaluate the rule, change the
memberships as one operation in one transaction).

**baseline** is the physical limit of the engine for the same work on the same data: plain
set-based SQL written by hand for the same rules, with no validation, no job, no operation, no
ledger: one aggregate and one page for a preview, one ``INSERT … SELECT`` or one ``DELETE …
WHERE`` and a commit for the membership change, each in key order (``ORDER BY sc_id``; on SQLite
that halves the ``DELETE``, whose ``IN`` list is otherwise built in the registration index's
order). It imports neither Django nor Tagbase.

Clocks: a preview is timed from an open connection (a fresh one for every call, as a request on
SQLite gets) to its last row; a membership change from an open connection to its commit. The
interpreter's and Django's start-up are outside (the process's wall time keeps them). Prints one
JSON object.

The rules (docs/segments.md) and their hand-written SQL sit side by side here; the harness
checks Tagbase's figures against that SQL (``expected``) on the same database, so a wrong
compiler or a wrong baseline stops the benchmark.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bench.baseline_import import SQLITE_PRAGMAS

# --- The rules ------------------------------------------------------------------------------

CITY = "Kazan"
EVENT = "app_login"
# Preview rules: a marketer's typical rule, and the same with an events condition.
PREVIEW_RULES: dict[str, dict[str, Any]] = {
    "typical": {
        "op": "and",
        "rules": [
            {"field": "customer.age", "operator": "gte", "value": 30},
            {"field": "receipts.days_since_last", "operator": "lt", "value": 90},
            {"field": "customer.city", "operator": "eq", "value": CITY},
        ],
    },
    "events": {
        "op": "and",
        "rules": [
            {"field": "customer.age", "operator": "gte", "value": 30},
            {"field": "receipts.days_since_last", "operator": "lt", "value": 90},
            {"field": "events.count", "event": EVENT, "days": 30, "operator": "gte", "value": 2},
        ],
    },
}
# The membership scenario's rule: every customer registered up to today (all of them).
MEMBERS_RULE: dict[str, Any] = {
    "op": "and",
    "rules": [{"field": "customer.days_since_registration", "operator": "gte", "value": 0}],
}
SEGMENT_NAME = "bench members"
SAMPLE = 20


def _years_before(day: date, years: int) -> date:
    """The same day ``years`` earlier; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)  # TIME_ZONE is UTC (see env)


class Sql:
    """Placeholders and values as each driver takes them (SQLite: Django's text forms)."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.mark = "?" if engine == "sqlite" else "%s"

    def moment(self, value: datetime) -> Any:
        if self.engine == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
        return value

    def day(self, value: date) -> Any:
        return value.isoformat() if self.engine == "sqlite" else value


def rule_sql(name: str, sql: Sql, today: date) -> tuple[str, list[Any]]:
    """``FROM … WHERE …`` of the customers ``c`` (with their stats ``s``) matching a preview
    rule, written by hand from docs/segments.md, and its parameters."""
    m = sql.mark
    # age >= 30: born on or before today 30 years ago; days since the last receipt < 90: its
    # local date is on or after today - 89 days (customers without receipts have no value).
    where = f"c.birth_date <= {m} AND s.last_receipt_at >= {m}"
    params: list[Any] = [
        sql.day(_years_before(today, 30)),
        sql.moment(_midnight(today - timedelta(days=89))),
    ]
    if name == "typical":
        where += f" AND lower(c.city) = {m}"  # the data's cities are ASCII: lower() suffices
        params.append(CITY.lower())
    elif name == "events":
        where += (
            " AND c.sc_id IN (SELECT e.customer_id FROM customers_event e "
            f"WHERE e.name = {m} AND e.occurred_at >= {m} "
            f"GROUP BY e.customer_id HAVING COUNT(*) >= {m})"
        )
        params += [EVENT, sql.moment(_midnight(today - timedelta(days=30))), 2]
    else:
        raise ValueError(name)
    # CROSS JOIN: SQLite then scans the customers in key order and looks their stats up, which
    # makes the first page a short scan (without statistics it otherwise starts from the
    # stats' date index and sorts: 0.9 s instead of 1 ms at 1M customers). PostgreSQL plans it
    # as the inner join it is.
    frm = "FROM customers_customer c CROSS JOIN customers_customerstats s"
    return f"{frm} WHERE s.customer_id = c.sc_id AND {where}", params


def members_where(sql: Sql, today: date) -> tuple[str, list[Any]]:
    """Customers registered up to today (days since registration >= 0), on ``customers_customer``
    unaliased."""
    return f"registered_at < {sql.mark}", [sql.moment(_midnight(today + timedelta(days=1)))]


def _cents(value: Any) -> str:
    return str(Decimal(str(value or 0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def preview_sql(cur: Any, sql: Sql, name: str, today: date) -> dict[str, Any]:
    """The baseline's preview: the members' count, receipts and total in one aggregate, the
    base's total and count (for the percentages), and the first page of members."""
    source, params = rule_sql(name, sql, today)
    cur.execute(
        "SELECT COUNT(*), COALESCE(SUM(s.receipt_count), 0), COALESCE(SUM(s.total_amount), 0) "
        + source,
        params,
    )
    count, receipts, total = cur.fetchone()
    cur.execute("SELECT COALESCE(SUM(total_amount), 0) FROM customers_customerstats")
    base_total = cur.fetchone()[0]
    cur.execute("SELECT COUNT(*) FROM customers_customer")
    all_customers = cur.fetchone()[0]
    cur.execute(f"SELECT c.* {source} ORDER BY c.sc_id LIMIT {SAMPLE}", params)
    sample = [row[0] for row in cur.fetchall()]
    return {
        "customers": int(count),
        "receipts": int(receipts),
        "total_value": _cents(total),
        "all_customers": int(all_customers),
        "base_total": _cents(base_total),
        "sample": sample,
    }


def _percent(part: Decimal, whole: Decimal) -> str:
    if not whole:
        return "0.00"
    return str((part * 100 / whole).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def five_metrics(figures: dict[str, Any]) -> dict[str, Any]:
    """docs/segments.md#metrics from the baseline's aggregate: what Tagbase must show."""
    total, receipts = Decimal(figures["total_value"]), figures["receipts"]
    average = (total / receipts).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return {
        "customers": figures["customers"],
        "percent_customers": _percent(
            Decimal(figures["customers"]), Decimal(figures["all_customers"])
        ),
        "percent_revenue": _percent(total, Decimal(figures["base_total"])),
        "average_receipt": str(average) if receipts else None,
        "total_value": figures["total_value"],
        "sample": figures["sample"],
    }


def expected(cur: Any, engine: str, today: date) -> dict[str, Any]:
    """What a correct run gives on this database for this day: each preview rule's figures and
    the number of customers the membership rule selects. The harness's check."""
    sql = Sql(engine)
    where, params = members_where(sql, today)
    cur.execute(f"SELECT COUNT(*) FROM customers_customer WHERE {where}", params)
    members = int(cur.fetchone()[0])
    previews = {name: preview_sql(cur, sql, name, today) for name in PREVIEW_RULES}
    return {"previews": previews, "members": members}


# --- The baseline ---------------------------------------------------------------------------


class Baseline:
    def __init__(self, engine: str, target: str) -> None:
        self.engine, self.target, self.sql = engine, target, Sql(engine)

    def connect(self) -> Any:
        if self.engine == "sqlite":
            conn = sqlite3.connect(self.target, isolation_level=None)
            for pragma in SQLITE_PRAGMAS:
                conn.execute(pragma)
            return conn
        import psycopg

        return psycopg.connect(self.target)

    def begin(self, conn: Any) -> None:
        if self.engine == "sqlite":
            conn.execute("BEGIN IMMEDIATE")  # as Tagbase's transaction_mode

    def commit(self, conn: Any) -> None:
        if self.engine == "sqlite":
            conn.execute("COMMIT")
        else:
            conn.commit()

    def preview(self, repeats: int) -> dict[str, Any]:
        today = datetime.now(UTC).date()
        out: dict[str, Any] = {}
        for name in PREVIEW_RULES:
            calls, result = [], {}
            for _ in range(repeats):
                conn = self.connect()
                cur = conn.cursor()
                started = time.perf_counter()
                result = preview_sql(cur, self.sql, name, today)
                calls.append(round(time.perf_counter() - started, 4))
                conn.close()
            out[name] = {"calls_s": calls, "result": result}
        return {"today": today.isoformat(), "rules": out}

    def add(self, audience: str) -> dict[str, Any]:
        today = datetime.now(UTC).date()
        conn = self.connect()
        cur = conn.cursor()
        m = self.sql.mark
        now = self.sql.moment(datetime.now(UTC))
        self.begin(conn)
        cur.execute(
            "INSERT INTO audiences_audience (name, name_key, description, member_count, "
            f"created_at, updated_at) VALUES ({m}, {m}, '', 0, {m}, {m}) RETURNING id",
            (audience, audience.casefold(), now, now),
        )
        audience_id = cur.fetchone()[0]
        self.commit(conn)
        where, params = members_where(self.sql, today)
        started = time.perf_counter()
        self.begin(conn)
        cur.execute(
            "INSERT INTO audiences_membership (audience_id, customer_id, set_at, operation_id) "
            f"SELECT {m}, sc_id, {m}, NULL FROM customers_customer WHERE {where} ORDER BY sc_id",
            [audience_id, now, *params],
        )
        changed = cur.rowcount
        statement = time.perf_counter()
        self.commit(conn)
        done = time.perf_counter()
        conn.close()
        return _changed(today, changed, started, statement, done)

    def remove(self, audience: str) -> dict[str, Any]:
        today = datetime.now(UTC).date()
        conn = self.connect()
        cur = conn.cursor()
        m = self.sql.mark
        cur.execute(f"SELECT id FROM audiences_audience WHERE name = {m}", (audience,))
        audience_id = cur.fetchone()[0]
        if self.engine == "postgres":
            conn.commit()  # end the transaction psycopg opened for the SELECT
        where, params = members_where(self.sql, today)
        started = time.perf_counter()
        self.begin(conn)
        cur.execute(
            f"DELETE FROM audiences_membership WHERE audience_id = {m} AND customer_id IN "
            f"(SELECT sc_id FROM customers_customer WHERE {where} ORDER BY sc_id)",
            [audience_id, *params],
        )
        changed = cur.rowcount
        statement = time.perf_counter()
        self.commit(conn)
        done = time.perf_counter()
        conn.close()
        return _changed(today, changed, started, statement, done)


def _changed(
    today: date, changed: int, started: float, statement: float, done: float
) -> dict[str, Any]:
    return {
        "today": today.isoformat(),
        "changed": changed,
        "total_s": round(done - started, 4),
        "steps_s": {
            "statement": round(statement - started, 4),
            "commit": round(done - statement, 4),
        },
    }


# --- Tagbase --------------------------------------------------------------------------------


class QueryLog:
    """Every SQL statement Django runs, with its seconds (``connection.execute_wrapper``)."""

    def __init__(self) -> None:
        self.queries: list[list[Any]] = []

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append([round(time.perf_counter() - started, 4), " ".join(sql.split())])

    def take(self) -> list[list[Any]]:
        taken, self.queries = self.queries, []
        return [[s, text[:400]] for s, text in taken]


def _django() -> None:
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagbase.settings")
    django.setup()


def tagbase_preview(repeats: int) -> dict[str, Any]:
    _django()
    from django.db import connection
    from django.utils import timezone

    from tagbase.segments import services

    log = QueryLog()
    out: dict[str, Any] = {}
    with connection.execute_wrapper(log):
        for name, rule in PREVIEW_RULES.items():
            calls: list[float] = []
            result: dict[str, Any] = {}
            for _ in range(repeats):
                connection.close()  # a fresh connection per call, as a request on SQLite
                connection.ensure_connection()
                log.take()
                started = time.perf_counter()
                shown = services.preview(rule, sample=SAMPLE)
                calls.append(round(time.perf_counter() - started, 4))
                m = shown.metrics
                result = {
                    "customers": m.customers,
                    "percent_customers": str(m.percent_customers),
                    "percent_revenue": str(m.percent_revenue),
                    "average_receipt": None
                    if m.average_receipt is None
                    else str(m.average_receipt),
                    "total_value": str(m.total_value),
                    "sample": [c.sc_id for c in shown.sample],
                }
            out[name] = {"calls_s": calls, "result": result, "queries": log.take()}
    return {"today": timezone.localdate().isoformat(), "rules": out}


def tagbase_change(action: str, audience_name: str) -> dict[str, Any]:
    """Include the members segment in an audience (add) or take it out (remove), as a user's
    request followed by the worker's job."""
    _django()
    from django.db import connection
    from django.utils import timezone

    from tagbase.accounts.actors import Actor
    from tagbase.audiences.models import Audience, Membership
    from tagbase.audiences.services import create_audience
    from tagbase.segments import pipeline, services
    from tagbase.segments.models import Segment

    actor = Actor.system("bench")
    if action == "add":
        segment = services.create_segment(SEGMENT_NAME, MEMBERS_RULE, actor=actor, refresh=False)
        audience = create_audience(audience_name, actor=actor)
    else:
        segment = Segment.objects.get(name=SEGMENT_NAME)
        audience = Audience.objects.get(name=audience_name)
    log = QueryLog()
    with connection.execute_wrapper(log):
        started = time.perf_counter()
        job = services.include_in_audience(
            segment, action=action, audience_id=audience.pk, actor=actor, enqueue=False
        )
        requested = time.perf_counter()
        request_queries = log.take()
        done = pipeline.run_segment_job(job.pk)
        finished = time.perf_counter()
        job_queries = log.take()
    audience.refresh_from_db()
    operation = done.operation if done else None
    return {
        "today": timezone.localdate().isoformat(),
        "status": done.status if done else None,
        "error": done.error if done else None,
        "expected": job.expected,
        "changed": None
        if operation is None
        else (operation.added if action == "add" else operation.removed),
        "member_count": audience.member_count,
        "rows": Membership.objects.filter(audience_id=audience.pk).count(),
        "total_s": round(finished - started, 4),
        "steps_s": {
            "request": round(requested - started, 4),
            "job": round(finished - requested, 4),
        },
        "queries": {"request": request_queries, "job": job_queries},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["tagbase", "baseline"])
    parser.add_argument("scenario", choices=["preview", "add", "remove"])
    parser.add_argument("--audience", default="bench")
    parser.add_argument("--repeats", type=int, default=3)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sqlite", help="the baseline's SQLite database file")
    where.add_argument("--postgres", help="the baseline's postgres:// URL")
    args = parser.parse_args(argv)
    if args.side == "tagbase":
        if args.scenario == "preview":
            result = tagbase_preview(args.repeats)
        else:
            result = tagbase_change(args.scenario, args.audience)
    else:
        if not (args.sqlite or args.postgres):
            parser.error("the baseline needs --sqlite or --postgres")
        engine = "sqlite" if args.sqlite else "postgres"
        base = Baseline(engine, args.sqlite or args.postgres)
        if args.scenario == "preview":
            result = base.preview(args.repeats)
        elif args.scenario == "add":
            result = base.add(args.audience)
        else:
            result = base.remove(args.audience)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
