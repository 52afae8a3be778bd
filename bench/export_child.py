"""The export benchmark's measured processes.

    python -m bench.export_child file     --audience NAME --format FORMAT --output FILE
    python -m bench.export_child http     --audience NAME --format FORMAT
    python -m bench.export_child baseline --format FORMAT --output FILE
                                 (--sqlite PATH | --postgres URL)

**file** is ``tagbase audience export NAME --format FORMAT --output FILE`` run in-process
(``call_command``, after Django set-up from DATABASE_URL and TAGBASE_DATA_DIR): keyset batches,
hashing, formula escaping, the temporary file renamed at the end.

**http** is the audience page's download (``audiences.views.audience_export``) called with a
request as a browser sends it, its ``StreamingHttpResponse`` consumed block by block as a WSGI
server would and thrown away: what one web process holds while a client downloads. The user is
an unsaved marketer, so the run writes nothing to the database.

**baseline** is the least any exporter must do for the same file: one DB-API cursor over
``SELECT e-mail, phone … ORDER BY customer id`` (streamed: ``fetchmany`` on SQLite, a named
server-side cursor on PostgreSQL), the same normalisation and SHA-256, ``csv.writer`` straight
into the file. It imports neither Django nor Tagbase. Only ``google`` and ``meta``.

Every mode prints one JSON object: seconds from the first query to the last byte, rows written
(below the header) and bytes.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sqlite3
import sys
import time
from typing import Any

from bench.baseline_import import SQLITE_PRAGMAS


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagbase.settings")
    import django

    django.setup()


def run_file(audience: str, export_format: str, output: str) -> dict[str, Any]:
    _django()
    import io

    from django.core.management import call_command

    said = io.StringIO()
    started = time.perf_counter()
    call_command(
        "audience", "export", audience, "--format", export_format, "--output", output, stdout=said
    )
    seconds = time.perf_counter() - started
    # "Wrote N rows of audience 'X' to FILE."
    rows = int(said.getvalue().split()[1].replace(",", ""))
    return {"s": seconds, "rows": rows, "bytes": os.path.getsize(output)}


def run_http(audience: str, export_format: str) -> dict[str, Any]:
    _django()
    from django.test import RequestFactory

    from tagbase.accounts.models import Role, User
    from tagbase.audiences.models import Audience
    from tagbase.audiences.views import audience_export

    target = Audience.objects.get(name=audience)
    request = RequestFactory().get(f"/audiences/{target.pk}/export/", {"format": export_format})
    request.user = User(username="bench", role=Role.MARKETER)
    started = time.perf_counter()
    response = audience_export(request, target.pk)
    size = lines = 0
    for block in response.streaming_content:  # type: ignore[attr-defined]
        size += len(block)
        lines += block.count(b"\n")
    seconds = time.perf_counter() - started
    header = 0 if export_format in ("sc_id", "external_id", "phone", "email", "card") else 1
    return {"s": seconds, "rows": lines - header, "bytes": size}


def run_baseline(engine: str, target: str, export_format: str, output: str) -> dict[str, Any]:
    plus = export_format == "google"
    header = ["Email", "Phone"] if plus else ["email", "phone"]
    sql = (
        "SELECT c.email, c.phone FROM audiences_membership m "
        "JOIN customers_customer c ON c.sc_id = m.customer_id "
        "JOIN audiences_audience a ON a.id = m.audience_id WHERE a.name = 'bench-export' "
        "ORDER BY m.customer_id"
    )
    if engine == "sqlite":
        conn: Any = sqlite3.connect(target)
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        cur = conn.cursor()
    else:
        import psycopg

        conn = psycopg.connect(target)
        cur = conn.cursor(name="bench_export")  # server-side: rows arrive as fetched
    started = time.perf_counter()
    rows = 0
    with open(output, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        cur.execute(sql)
        while batch := cur.fetchmany(5000):
            for email, phone in batch:
                if not email and not phone:
                    continue
                e = hashlib.sha256(email.strip().lower().encode()).hexdigest() if email else ""
                p = phone if plus else phone[1:] if phone else ""
                writer.writerow([e, hashlib.sha256(p.encode()).hexdigest() if p else ""])
                rows += 1
    seconds = time.perf_counter() - started
    conn.close()
    return {"s": seconds, "rows": rows, "bytes": os.path.getsize(output)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export_child")
    parser.add_argument("mode", choices=["file", "http", "baseline"])
    parser.add_argument("--audience", default="bench-export")
    parser.add_argument("--format", dest="export_format", default="google")
    parser.add_argument("--output")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sqlite")
    where.add_argument("--postgres")
    args = parser.parse_args(argv)
    if args.mode == "file":
        result = run_file(args.audience, args.export_format, args.output)
    elif args.mode == "http":
        result = run_http(args.audience, args.export_format)
    else:
        engine, target = ("sqlite", args.sqlite) if args.sqlite else ("postgres", args.postgres)
        result = run_baseline(engine, target, args.export_format, args.output)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
