"""The export benchmark: an audience of N members exported as a hashed ad-platform list, at a
small and a large N, to show that the exporting process's memory does not grow with N.

For each database and each size: a template database, migrated with ``python -m tagbase
migrate``, holding N customers and one audience ``bench-export`` whose members are all of them,
generated set-based (one ``INSERT … SELECT`` each). Every 10th customer has no phone, every 7th
no e-mail, so every 70th has neither and is left out of the file. Exports only read, so every
run uses the template itself. Per run, in turn (machine noise spreads over all three):

- **baseline** (``bench.export_child baseline``): one streamed DB-API cursor, hashlib, csv —
  the least any exporter must do for the same file;
- **file** (``bench.export_child file``): ``tagbase audience export … --output`` in-process;
- **http** (``bench.export_child http``): the page's streamed download, consumed as a WSGI
  server would.

Checked before any figure is kept: every child wrote exactly N - N/70 rows; the baseline's and
Tagbase's files are byte-identical, and the download has the same size; the first data row is
the SHA-256 (computed here with hashlib) of customer 1's e-mail and phone. Peak RSS of exactly
each child comes from ``bench.measure``. The bars (the issue's "constant memory", with the
import benchmark's numbers): Tagbase's peak RSS at the large size at most 1.2 times the small
size's and at most 300 MB.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.baseline_import import SQLITE_PRAGMAS
from bench.databases import (
    DEFAULT_POSTGRES_URL,
    BenchError,
    PostgresBench,
    RunDatabase,
    SqliteBench,
    migrate,
    open_bench_database,
)
from bench.import_bench import _fail, _figures
from bench.measure import Measured, run_measured
from bench.memory import GROWTH_LIMIT, RSS_LIMIT_MB

Log = Callable[[str], None]
KINDS = ("baseline", "file", "http")
TAGBASE_KINDS = ("file", "http")
AUDIENCE = "bench-export"
EXPORT_FORMAT = "google"

_COLUMNS = (
    "sc_id, external_id, last_name, first_name, middle_name, gender, country, city, "
    "registered_at, phone_raw, phone, email_raw, email, attributes, created_at, updated_at"
)


def expected_rows(n: int) -> int:
    return n - n // 70


def customer_contacts(n: int) -> tuple[str | None, str | None]:
    """Customer ``n``'s e-mail and phone as the SQL below stores them (for the check)."""
    phone = None if n % 10 == 0 else f"+7900{n % 10_000_000:07d}"
    email = None if n % 7 == 0 else f"customer.{n}@example.com"
    return email, phone


def customers_sql(engine: str) -> str:
    """N customers (one parameter) with the contacts ``customer_contacts`` describes."""
    if engine == "sqlite":
        return (
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) "
            f"INSERT INTO customers_customer ({_COLUMNS}) "
            "SELECT n, 'P' || n, '', '', '', '', '', '', '2024-01-01 00:00:00', '', "
            "CASE WHEN n % 10 = 0 THEN NULL ELSE '+7900' || printf('%07d', n % 10000000) END, "
            "'', CASE WHEN n % 7 = 0 THEN NULL ELSE 'customer.' || n || '@example.com' END, "
            "'{}', '2024-01-01 00:00:00', '2024-01-01 00:00:00' FROM s"
        )
    return (
        f"INSERT INTO customers_customer ({_COLUMNS}) "
        "SELECT n, 'P' || n, '', '', '', '', '', '', timestamptz '2024-01-01 00:00:00+00', '', "
        "CASE WHEN n %% 10 = 0 THEN NULL "
        "ELSE '+7900' || lpad((n %% 10000000)::text, 7, '0') END, "
        "'', CASE WHEN n %% 7 = 0 THEN NULL ELSE 'customer.' || n || '@example.com' END, "
        "'{}'::jsonb, timestamptz '2024-01-01 00:00:00+00', timestamptz '2024-01-01 00:00:00+00' "
        "FROM generate_series(1, %s::bigint) AS n"
    )


def audience_sql(mark: str) -> list[str]:
    """The audience (id 1) and its N memberships (one parameter each: N), in key order."""
    return [
        "INSERT INTO audiences_audience (id, name, name_key, description, member_count, "
        f"last_set_at, created_at, updated_at, created_by_id) VALUES (1, '{AUDIENCE}', "
        f"'{AUDIENCE}', '', {mark}, '2024-01-01 00:00:00', '2024-01-01 00:00:00', "
        "'2024-01-01 00:00:00', NULL)",
        "INSERT INTO audiences_membership (audience_id, customer_id, set_at, operation_id) "
        "SELECT 1, sc_id, '2024-01-01 00:00:00', NULL FROM customers_customer "
        f"WHERE sc_id <= {mark} ORDER BY sc_id",
    ]


def prepare(db: SqliteBench | PostgresBench, customers: int) -> None:
    """Migrate the template and fill it (set-based), then make it as a live database is."""
    if isinstance(db, SqliteBench):
        db.template.data_dir.mkdir(parents=True)
        migrate(db.template)
        conn = sqlite3.connect(db.template.data_dir / "tagbase.sqlite3", isolation_level=None)
        try:
            for pragma in SQLITE_PRAGMAS:
                conn.execute(pragma)
            conn.execute("BEGIN")
            conn.execute(customers_sql("sqlite"), (customers,))
            for sql in audience_sql("?"):
                conn.execute(sql, (customers,))
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        return
    import psycopg

    with db._admin() as conn:
        conn.execute(f'CREATE DATABASE "{db.prefix}"')
    db.created.append(db.prefix)
    db.template.data_dir.mkdir(parents=True)
    migrate(db.template)
    with psycopg.connect(db.template.url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute(customers_sql("postgres"), (customers,))
            for sql in audience_sql("%s"):
                conn.execute(sql, (customers,))
        conn.execute("VACUUM ANALYZE customers_customer")
        conn.execute("VACUUM ANALYZE audiences_membership")


def _child_env(run: RunDatabase) -> dict[str, str]:
    return run.env()


def run_child(kind: str, db: Any, out_dir: Path) -> tuple[Measured, dict[str, Any], Path | None]:
    template: RunDatabase = db.template
    output = out_dir / f"{kind}.csv"
    argv = [sys.executable, "-m", "bench.export_child", kind, "--format", EXPORT_FORMAT]
    if kind == "baseline":
        target = (
            ["--sqlite", str(template.data_dir / "tagbase.sqlite3")]
            if db.engine == "sqlite"
            else ["--postgres", template.url]
        )
        argv += [*target, "--output", str(output)]
    elif kind == "file":
        argv += ["--audience", AUDIENCE, "--output", str(output)]
    else:
        argv += ["--audience", AUDIENCE]
    measured = run_measured(argv, _child_env(template), str(machine.ROOT))
    if measured.returncode != 0:
        raise _fail(f"{kind} exited with {measured.returncode}", measured)
    try:
        out = json.loads(measured.stdout)
    except ValueError:
        raise _fail(f"{kind} did not print a JSON result", measured) from None
    return measured, out, output if kind != "http" else None


def _sha(text: str | None) -> str:
    return hashlib.sha256(text.encode()).hexdigest() if text else ""


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check(results: dict[str, dict[str, Any]], files: dict[str, Path], customers: int) -> list[str]:
    """Every way this run's outputs differ from a correct export (empty when right)."""
    want = expected_rows(customers)
    problems = [
        f"{kind} wrote {r['rows']} rows, expected {want}"
        for kind, r in results.items()
        if r["rows"] != want
    ]
    # Compared by digest, a block at a time: the harness must stay small (bench/measure.py).
    if _file_digest(files["baseline"]) != _file_digest(files["file"]):
        problems.append("the baseline's and Tagbase's files differ")
    size = files["file"].stat().st_size
    if results["http"]["bytes"] != size:
        problems.append(f"the download has {results['http']['bytes']} bytes, the file {size}")
    email, phone = customer_contacts(1)
    with files["file"].open("rb") as handle:
        first = handle.read(4096).split(b"\r\n", 2)[:2]
    expected = [b"Email,Phone", f"{_sha(email)},{_sha(phone)}".encode()]
    if first != expected:
        problems.append(f"the file starts {first!r}, expected {expected!r}")
    return problems


def bench_size(
    engine: str, root: Path, customers: int, runs: int, postgres_url: str, log: Log
) -> dict[str, Any]:
    """Prepare one template of ``customers``, run every kind ``runs`` times, drop it."""
    db = open_bench_database(engine, root / f"{engine}-{customers}", postgres_url)
    results: list[dict[str, Any]] = []
    try:
        log(f"[{engine}] preparing {customers:,} customers and an audience of all of them")
        clock = time.perf_counter()
        prepare(db, customers)
        setup_s = round(time.perf_counter() - clock, 1)
        log(f"[{engine}] prepared in {setup_s} s")
        out_dir = root / f"out-{engine}-{customers}"
        for number in range(1, runs + 1):
            out_dir.mkdir(parents=True, exist_ok=True)
            outs: dict[str, dict[str, Any]] = {}
            files: dict[str, Path] = {}
            for kind in KINDS:
                load = machine.load_average()
                measured, out, output = run_child(kind, db, out_dir)
                outs[kind] = out
                if output:
                    files[kind] = output
                results.append(
                    {"kind": kind, "run": number, "load_before": load, "result": out}
                    | _figures(measured)
                )
                log(
                    f"[{engine}] {customers:,}: {kind} run {number}: {out['s']:.2f} s, "
                    f"{out['rows']:,} rows, peak RSS {measured.max_rss_mb:.0f} MB"
                )
            problems = check(outs, files, customers)
            if problems:
                raise BenchError(f"[{engine}] {customers:,}: wrong export: " + "; ".join(problems))
            for path in files.values():
                path.unlink()
    finally:
        db.close()
    return {"customers": customers, "setup_s": setup_s, "runs": results, **summarize(results)}


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for kind in KINDS:
        mine = [r for r in results if r["kind"] == kind]
        seconds = [r["result"]["s"] for r in mine]
        rows = mine[-1]["result"]["rows"]
        summary[kind] = {
            "s_median": round(statistics.median(seconds), 3),
            "rows": rows,
            "rows_per_s": round(rows / statistics.median(seconds)),
            "process_wall_s_median": round(statistics.median(r["wall_s"] for r in mine), 3),
            "max_rss_mb_median": round(statistics.median(r["max_rss_kb"] / 1024 for r in mine), 1),
            "rss_anon_mb_median": round(
                statistics.median(r["rss_anon_peak_kb"] / 1024 for r in mine), 1
            ),
            "rss_file_mb_median": round(
                statistics.median(r["rss_file_peak_kb"] / 1024 for r in mine), 1
            ),
        }
    return {"summary": summary}


def bars(small: dict[str, Any], large: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for kind in TAGBASE_KINDS:
        s = small["summary"][kind]["max_rss_mb_median"]
        big = large["summary"][kind]["max_rss_mb_median"]
        ratio = round(big / s, 3)
        at_size = large["customers"] >= 10_000_000
        out += [
            {
                "name": f"{kind}: peak RSS {large['customers']:,} / {small['customers']:,}",
                "bar": f"<= {GROWTH_LIMIT}",
                "value": ratio,
                "pass": ratio <= GROWTH_LIMIT,
                "at_defined_size": at_size,
            },
            {
                "name": f"{kind}: peak RSS at {large['customers']:,} (MB)",
                "bar": f"<= {RSS_LIMIT_MB}",
                "value": big,
                "pass": big <= RSS_LIMIT_MB,
                "at_defined_size": at_size,
            },
        ]
    return out


def bench_export(
    engine: str,
    root: Path,
    small: int,
    large: int,
    runs: int,
    postgres_url: str = DEFAULT_POSTGRES_URL,
    log: Log = print,
) -> dict[str, Any]:
    """Both sizes on one engine; every database is dropped on the way out."""
    if not 70 <= small < large:
        raise ValueError(f"need 70 <= --small < --large (got {small}, {large})")
    started = datetime.now(UTC)
    load_start = machine.load_average()
    warnings = [w for w in [machine.load_warning(load_start, "at start")] if w]
    probe = open_bench_database(engine, root / "probe", postgres_url)
    info = probe.server_info()
    if isinstance(probe, PostgresBench) and (stale := probe.stale_databases()):
        warnings.append(f"bench databases left by killed runs (drop them by hand): {stale}")
    sizes = [bench_size(engine, root, n, runs, postgres_url, log) for n in (small, large)]
    load_end = machine.load_average()
    if warning := machine.load_warning(load_end, "at end"):
        warnings.append(warning)
    return {
        "benchmark": "export",
        "db": engine,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {"small": small, "large": large, "runs": runs, "format": EXPORT_FORMAT},
        "machine": {**machine.describe(), **info},
        "load_average": {"start": load_start, "end": load_end},
        "warnings": warnings,
        "sizes": sizes,
        "bars": bars(sizes[0], sizes[1]),
    }


# --- The table ------------------------------------------------------------------------------


def export_table(result: dict[str, Any], saved: Path | None = None) -> str:
    m, p = result["machine"], result["params"]
    lines = [
        "",
        f"== Export benchmark: {result['db']}, audience of {p['small']:,} and {p['large']:,} "
        f"members as {p['format']} (hashed e-mail and phone), {p['runs']} run(s) each",
        f"  machine: {m['nproc']} cores, {m['memory_mb']} MB, {m['cpu_model']}",
        f"  load average: start {report._load(result['load_average']['start'])}, "
        f"end {report._load(result['load_average']['end'])}",
        f"  {'members':>11} {'':<9} {'s median':>9} {'rows/s':>10} "
        f"{'peak RSS MB (anon / file)':>27}",
    ]
    for size in result["sizes"]:
        for kind in KINDS:
            s = size["summary"][kind]
            rss = f"{s['max_rss_mb_median']:.0f} ({s['rss_anon_mb_median']:.0f} / "
            rss += f"{s['rss_file_mb_median']:.0f})"
            lines.append(
                f"  {size['customers']:>11,} {kind:<9} {s['s_median']:>9.2f} "
                f"{s['rows_per_s']:>10,} {rss:>27}"
            )
    lines += [
        "  bars (constant memory):",
        *(report._verdict(b) for b in result["bars"]),
        *(f"  WARNING: {w}" for w in result["warnings"]),
    ]
    if saved:
        lines.append(f"  result: {saved}")
    return "\n".join(lines)
