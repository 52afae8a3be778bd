"""The import baseline: the physical limit of the engine on the benchmark's file.

Plain set-based SQL with no classification, no report and no provenance: read the file line by
line, strip the terminator, skip values that are not ASCII digits (a cheap check), stage the
ids (``executemany`` into a temporary table on SQLite, ``COPY`` on PostgreSQL), then one
``INSERT … SELECT`` of the staged ids that are customers into ``audiences_membership`` for a
fresh audience row, in key order, ignoring conflicts, and one commit.

Run as its own process by the harness (``bench.import_bench``) so that its wall time and peak
RSS are measured exactly like Tagbase's. It imports neither Django nor Tagbase: only the
standard library and psycopg. Prints one JSON object: staged, inserted, audience_id and the
seconds of each step (stage: connect, read and stage; insert; commit).

    python bench/baseline_import.py FILE --audience NAME (--sqlite PATH | --postgres URL)
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

# The connection settings Tagbase uses for SQLite (the init_command in tagbase/settings.py;
# tests/test_bench_smoke.py keeps the two equal), so that both sides run on the same engine
# configuration, foreign-key checks included.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA cache_size=-65536",
)
COPY_BLOCK_LINES = 65536


def read_ids(path: str) -> Iterator[str]:
    """The digit-only values of the file, terminator (``;`` or ``.``) stripped, in file order."""
    with open(path, encoding="utf-8", newline="") as fh:
        for line in fh:
            value = line.strip()
            if value[-1:] in (";", "."):
                value = value[:-1].rstrip()
            if value.isascii() and value.isdigit():
                yield value


def _now_sqlite() -> str:
    # Django stores SQLite datetimes as naive UTC text in this form.
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class Clock:
    """Seconds per step, for the report (where the physical limit's time goes)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.timings[step] = round(now - self.last, 3)
        self.last = now


def import_sqlite(path: str, file: str, audience: str) -> dict[str, object]:
    clock = Clock()
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(pragma)
    now = _now_sqlite()
    conn.execute("BEGIN IMMEDIATE")
    audience_id = conn.execute(
        "INSERT INTO audiences_audience (name, name_key, description, member_count, "
        "created_at, updated_at) VALUES (?, ?, '', 0, ?, ?)",
        (audience, audience.casefold(), now, now),
    ).lastrowid
    conn.execute("CREATE TEMP TABLE bench_stage (id INTEGER NOT NULL)")
    conn.executemany("INSERT INTO bench_stage (id) VALUES (?)", ((int(v),) for v in read_ids(file)))
    staged = conn.execute("SELECT COUNT(*) FROM bench_stage").fetchone()[0]
    clock.lap("stage")
    inserted = conn.execute(
        "INSERT OR IGNORE INTO audiences_membership (audience_id, customer_id, set_at, "
        "operation_id) SELECT ?, s.id, ?, NULL FROM bench_stage s "
        "JOIN customers_customer c ON c.sc_id = s.id ORDER BY s.id",
        (audience_id, now),
    ).rowcount
    clock.lap("insert")
    conn.execute("COMMIT")
    conn.close()
    clock.lap("commit")
    return {"staged": staged, "inserted": inserted, "audience_id": audience_id, **clock.timings}


def _copy_blocks(file: str) -> Iterator[str]:
    block: list[str] = []
    for value in read_ids(file):
        block.append(value)
        if len(block) >= COPY_BLOCK_LINES:
            yield "\n".join(block) + "\n"
            block = []
    if block:
        yield "\n".join(block) + "\n"


def import_postgres(url: str, file: str, audience: str) -> dict[str, object]:
    import psycopg

    clock = Clock()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO audiences_audience (name, name_key, description, member_count, "
            "created_at, updated_at) VALUES (%s, %s, '', 0, now(), now()) RETURNING id",
            (audience, audience.casefold()),
        )
        audience_id = cur.fetchone()[0]  # type: ignore[index]
        cur.execute("CREATE TEMP TABLE bench_stage (id bigint NOT NULL) ON COMMIT DROP")
        with cur.copy("COPY bench_stage (id) FROM STDIN") as copy:
            for block in _copy_blocks(file):
                copy.write(block)
        staged = cur.rowcount
        clock.lap("stage")
        cur.execute("ANALYZE bench_stage")  # a temp table has no statistics for the join plan
        cur.execute(
            "INSERT INTO audiences_membership (audience_id, customer_id, set_at, operation_id) "
            "SELECT %s, s.id, now(), NULL FROM bench_stage s "
            "JOIN customers_customer c ON c.sc_id = s.id ORDER BY s.id ON CONFLICT DO NOTHING",
            (audience_id,),
        )
        inserted = cur.rowcount
        clock.lap("insert")
    clock.lap("commit")  # on leaving the block; includes the deferred foreign-key checks
    return {"staged": staged, "inserted": inserted, "audience_id": audience_id, **clock.timings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--audience", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite", help="path of the SQLite database file")
    where.add_argument("--postgres", help="postgres:// URL of the database")
    args = parser.parse_args(argv)
    if args.sqlite:
        result = import_sqlite(args.sqlite, args.file, args.audience)
    else:
        result = import_postgres(args.postgres, args.file, args.audience)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
