"""The pages benchmark's measured processes: Tagbase's pages through Django's test client, and
the plain SQL those pages need.

    python -m bench.pages_child setup
    python -m bench.pages_child tagbase  [--requests N] [--warmup W]
    python -m bench.pages_child count
    python -m bench.pages_child baseline [--requests N] [--warmup W] [--count-repeats R]
                                         (--sqlite PATH | --postgres URL)

**setup** (once per template, Django from the environment) computes the reserved customers'
receipt metrics with Tagbase's own ``refresh_customer_stats`` and creates the login the pages are
requested as (``bench``, role marketer: it sees the rename and delete actions too).

**tagbase** requests each page of ``PAGES`` through ``django.test.Client`` as that user: the
whole server side — middleware, session and user, the view, its queries, the template — with no
network and no HTTP server. Each request is timed from ``client.get`` to the response (its CPU
seconds in this process are kept too: on a shared machine they show what the others' load does
to the wall time; on SQLite they include the database's work); between
requests ``close_old_connections`` runs, as Django's handler runs it at every request's start
and end (which the test client skips): on SQLite (no persistent connections) every request then
opens its connection inside the clock, as it does in production; on PostgreSQL the connection
lives ``DB_CONN_MAX_AGE`` (60 s), as it does in production. ``--warmup`` requests per page come
first, outside the figures (the first one's time is kept apart). Then one more request per page
with every SQL statement logged (``connection.execute_wrapper``): the query count and where the
time goes. Every response must be 200. The process also reports what each page shows (the
audiences linked, in order, and the member counts shown) for the harness to check.

**count** does only the logged request per page (and the profiles of the reserved customers in
fewer and no audiences): the query counts on another database (10 audiences).

**baseline** runs the plain SQL each page needs for its data, with the engine's driver and
Tagbase's connection settings (on SQLite a fresh connection per request with Tagbase's
``PRAGMA``s, on PostgreSQL one connection kept open), the same number of times; no session, no
user, no template. Plus, informative, the count a list would run without stored counters
(``GROUP BY`` over every membership), ``--count-repeats`` times. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import time
from typing import Any

from bench.baseline_import import SQLITE_PRAGMAS
from bench.datagen_audiences import FEW_CUSTOMER, NO_AUDIENCE_CUSTOMER, PROFILE_CUSTOMER, RESERVED

USERNAME = "bench"
SEARCH = "VIP"
PAGE_SIZE = 50  # TAGBASE_PAGE_SIZE's default: the harness drops every TAGBASE_* variable
# name -> (URL, what it is); the URLs are Tagbase's (tagbase/urls.py), checked by the smoke test.
PAGES: dict[str, tuple[str, str]] = {
    "list": ("/audiences/", "Target audiences, first page, by name"),
    "search": (f"/audiences/?q={SEARCH}", f"Target audiences, search “{SEARCH}”"),
    "sort": ("/audiences/?sort=-count", "Target audiences, by number of customers, descending"),
    "profile": (f"/customers/{PROFILE_CUSTOMER}/", "profile of the customer in most audiences"),
}
# Counted only (no timing): the same profile page for customers in fewer and in no audiences.
COUNTED_ONLY: dict[str, str] = {
    "profile_few": f"/customers/{FEW_CUSTOMER}/",
    "profile_none": f"/customers/{NO_AUDIENCE_CUSTOMER}/",
}
LINK = re.compile(r'href="/audiences/(\d+)/"')
COUNT_CELL = re.compile(r'<td class="num">([\d,]+)</td>')


def shown(html: str) -> dict[str, list[int]]:
    """What a page shows that the harness checks: the audiences it links to, in order, and the
    member counts in its number cells (the list pages)."""
    return {
        "ids": [int(x) for x in LINK.findall(html)],
        "counts": [int(x.replace(",", "")) for x in COUNT_CELL.findall(html)],
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


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
            self.queries.append([_ms(time.perf_counter() - started), " ".join(sql.split())[:300]])


def _django() -> None:
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagbase.settings")
    django.setup()


def setup() -> dict[str, Any]:
    _django()
    from tagbase.accounts.management.logins import create_login
    from tagbase.accounts.models import Role
    from tagbase.customers.services import refresh_customer_stats

    stats = refresh_customer_stats(range(1, RESERVED + 1))
    create_login(USERNAME, "bench-not-a-secret-9x7", role=Role.MARKETER)
    return {"stats_rows": stats, "user": USERNAME}


def _client() -> Any:
    from django.test import Client

    from tagbase.accounts.models import User

    client = Client()
    client.force_login(User.objects.get(username=USERNAME))
    return client


def _get(client: Any, url: str) -> tuple[float, Any]:
    took, _, response = _timed_get(client, url)
    return took, response


def _timed_get(client: Any, url: str) -> tuple[float, float, Any]:
    """One request: its wall seconds, this process's CPU seconds in it, the response."""
    from django.db import close_old_connections

    close_old_connections()  # what the handler does at a request's end (the client skips it)
    cpu = time.process_time()
    started = time.perf_counter()
    response = client.get(url)
    took = time.perf_counter() - started
    cpu = time.process_time() - cpu
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}, expected 200")
    return took, cpu, response


def _logged(client: Any, url: str) -> dict[str, Any]:
    """One request with every statement logged: count, SQL seconds, the statements."""
    from django.db import connection

    log = QueryLog()
    with connection.execute_wrapper(log):
        took, response = _get(client, url)
    return {
        "queries": len(log.queries),
        "logged_ms": _ms(took),
        "sql_ms": round(sum(q[0] for q in log.queries), 3),
        "query_log": log.queries,
        "shown": shown(response.content.decode()),
        "bytes": len(response.content),
    }


def tagbase(requests: int, warmup: int) -> dict[str, Any]:
    _django()
    client = _client()
    pages: dict[str, Any] = {}
    for name, (url, _) in PAGES.items():
        times, cpu_times = [], []
        first = None
        for i in range(warmup + requests):
            took, cpu, _response = _timed_get(client, url)
            if i == 0:
                first = took
            if i >= warmup:
                times.append(_ms(took))
                cpu_times.append(_ms(cpu))
        pages[name] = {
            "url": url,
            "first_ms": _ms(first or 0.0),
            "calls_ms": times,
            "cpu_ms": cpu_times,
        }
        pages[name] |= _logged(client, url)
    for name, url in COUNTED_ONLY.items():
        pages[name] = {"url": url} | _logged(client, url)
    return {"pages": pages}


def count() -> dict[str, Any]:
    """Only the logged request of every page: query counts on this database."""
    _django()
    client = _client()
    urls = {name: url for name, (url, _) in PAGES.items()} | COUNTED_ONLY
    for url in urls.values():  # warm: the first request of a process loads templates, caches
        _get(client, url)
    return {"pages": {name: {"url": url} | _logged(client, url) for name, url in urls.items()}}


# --- The baseline ---------------------------------------------------------------------------

AUDIENCE_COLUMNS = "id, name, description, member_count, last_set_at"


def _list_sql(m: str, order: str, search: bool) -> list[tuple[str, tuple[Any, ...]]]:
    where = f" WHERE name_key LIKE {m}" if search else ""
    params: tuple[Any, ...] = (f"%{SEARCH.casefold()}%",) if search else ()
    return [
        (f"SELECT COUNT(*) FROM audiences_audience{where}", params),
        (
            f"SELECT {AUDIENCE_COLUMNS} FROM audiences_audience{where} ORDER BY {order} "
            f"LIMIT {PAGE_SIZE}",
            params,
        ),
    ]


def _profile_sql(m: str, customer: int) -> list[tuple[str, tuple[Any, ...]]]:
    """The profile's data: the customer, metrics, cards, latest receipts and events, the
    audiences with the operation that set each, the latest removals."""
    one = (customer,)
    return [
        (f"SELECT * FROM customers_customer WHERE sc_id = {m}", one),
        (f"SELECT * FROM customers_customerstats WHERE customer_id = {m}", one),
        (f"SELECT * FROM customers_card WHERE customer_id = {m} ORDER BY issued_at DESC", one),
        (
            f"SELECT * FROM customers_receipt WHERE customer_id = {m} "
            "ORDER BY date DESC, id DESC LIMIT 20",
            one,
        ),
        (
            f"SELECT * FROM customers_event WHERE customer_id = {m} "
            "ORDER BY occurred_at DESC, id DESC LIMIT 20",
            one,
        ),
        (
            "SELECT a.id, a.name, m.set_at, o.id, o.kind, o.actor_label "
            "FROM audiences_membership m JOIN audiences_audience a ON a.id = m.audience_id "
            "LEFT JOIN audiences_operation o ON o.id = m.operation_id "
            f"WHERE m.customer_id = {m} ORDER BY a.name_key",
            one,
        ),
        (
            "SELECT * FROM audiences_removedmembership "
            f"WHERE customer_id = {m} ORDER BY removed_at DESC LIMIT 50",
            one,
        ),
    ]


def baseline_statements(engine: str) -> dict[str, list[tuple[str, tuple[Any, ...]]]]:
    m = "?" if engine == "sqlite" else "%s"
    return {
        "list": _list_sql(m, "name_key, id", search=False),
        "search": _list_sql(m, "name_key, id", search=True),
        "sort": _list_sql(m, "member_count DESC, name_key, id", search=False),
        "profile": _profile_sql(m, PROFILE_CUSTOMER),
    }


def _shown_by(name: str, results: list[list[Any]]) -> dict[str, list[int]]:
    """What the page built from these rows would show (the harness compares it)."""
    if name == "profile":
        return {"ids": [int(r[0]) for r in results[5]], "counts": []}
    return {"ids": [int(r[0]) for r in results[1]], "counts": [int(r[3]) for r in results[1]]}


class Baseline:
    def __init__(self, engine: str, target: str) -> None:
        self.engine, self.target = engine, target
        self.kept: Any = None

    def connect(self) -> Any:
        """SQLite: a new connection per request, as Tagbase (CONN_MAX_AGE 0); PostgreSQL: one
        connection kept, as Tagbase's persistent ones."""
        if self.engine == "sqlite":
            conn = sqlite3.connect(self.target, isolation_level=None)
            for pragma in SQLITE_PRAGMAS:
                conn.execute(pragma)
            return conn
        if self.kept is None:
            import psycopg

            self.kept = psycopg.connect(self.target, autocommit=True)
        return self.kept

    def release(self, conn: Any) -> None:
        if self.engine == "sqlite":
            conn.close()

    def page(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[list[Any]]:
        conn = self.connect()
        try:
            cur = conn.cursor()
            out = []
            for sql, params in statements:
                cur.execute(sql, params)
                out.append(cur.fetchall())
            return out
        finally:
            self.release(conn)

    def run(self, requests: int, warmup: int, count_repeats: int) -> dict[str, Any]:
        pages: dict[str, Any] = {}
        for name, statements in baseline_statements(self.engine).items():
            times, first, results = [], 0.0, []
            for i in range(warmup + requests):
                started = time.perf_counter()
                results = self.page(statements)
                took = time.perf_counter() - started
                if i == 0:
                    first = took
                if i >= warmup:
                    times.append(_ms(took))
            pages[name] = {
                "first_ms": _ms(first),
                "calls_ms": times,
                "queries": len(statements),
                "shown": _shown_by(name, results),
            }
        counted = "SELECT audience_id, COUNT(*) FROM audiences_membership GROUP BY audience_id"
        calls = []
        for _ in range(count_repeats):
            started = time.perf_counter()
            self.page([(counted + " ORDER BY 2 DESC LIMIT 50", ())])
            calls.append(_ms(time.perf_counter() - started))
        pages["count_rows"] = {"calls_ms": calls, "queries": 1, "sql": counted}
        return {"pages": pages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["setup", "tagbase", "count", "baseline"])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--count-repeats", type=int, default=3)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sqlite", help="the baseline's SQLite database file")
    where.add_argument("--postgres", help="the baseline's postgres:// URL")
    args = parser.parse_args(argv)
    if args.side == "setup":
        result = setup()
    elif args.side == "tagbase":
        result = tagbase(args.requests, args.warmup)
    elif args.side == "count":
        result = count()
    else:
        if not (args.sqlite or args.postgres):
            parser.error("the baseline needs --sqlite or --postgres")
        engine = "sqlite" if args.sqlite else "postgres"
        result = Baseline(engine, args.sqlite or args.postgres).run(
            args.requests, args.warmup, args.count_repeats
        )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
