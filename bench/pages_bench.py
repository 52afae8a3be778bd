"""The pages benchmark: the Target audiences page and the customer profile, server time.

For each database: a template migrated and filled with N customers, A audiences and M
memberships (``bench.datagen_audiences``; 1M / 1,000 / 10M for the bars), checked for
consistency before anything is measured; and a second, tiny one with 10 audiences, for the query
counts. Then, per run, a baseline process and a Tagbase process in turn on one clone (the pages
only read): each requests every page ``--requests`` times (``bench.pages_child``). A run's
figures are kept only when what Tagbase's pages show — the audiences linked, in order, and the
member counts — is exactly what the baseline's plain SQL returns on the same database, and every
response was a 200; anything else stops the benchmark (``BenchError``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import datagen_audiences, machine, report
from bench.baseline_import import SQLITE_PRAGMAS
from bench.databases import (
    DEFAULT_POSTGRES_URL,
    BenchError,
    PostgresBench,
    RunDatabase,
    SqliteBench,
    migrate,
)
from bench.datagen_audiences import AudienceSpec
from bench.import_bench import _figures
from bench.measure import Measured, run_measured
from bench.pages_child import PAGES
from bench.segment_bench import _process

Log = Callable[[str], None]
KINDS = ("baseline", "tagbase")
LIST_PAGES = ("list", "search", "sort")
# quality.md §5: "Target audiences page with 1,000 audiences and 10M memberships: server time
# p95 <= 50 ms; query count independent of the number of audiences"; "Customer profile with 200
# audiences: p95 <= 50 ms".
P95_BAR_MS = 50.0
BAR_SPEC = AudienceSpec(customers=1_000_000, audiences=1_000, memberships=10_000_000)
SMALL_SPEC = AudienceSpec(customers=1_000, audiences=10, memberships=2_000, profile_audiences=10)
# Settings that would change what the children do or how fast: the clock's zone, the
# connection's lifetime, debug mode (which keeps every query); RunDatabase.env already drops
# TAGBASE_* and DATABASE_URL.
DROPPED_ENV = ("TIME_ZONE", "DB_CONN_MAX_AGE", "DEBUG")


def child_env(run: RunDatabase) -> dict[str, str]:
    return {k: v for k, v in run.env().items() if k not in DROPPED_ENV}


def _anchor() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _setup(run: RunDatabase) -> dict[str, Any]:
    """The reserved customers' receipt metrics (Tagbase's own code) and the login."""
    measured = run_measured(
        [sys.executable, "-m", "bench.pages_child", "setup"], child_env(run), str(machine.ROOT)
    )
    if measured.returncode != 0:
        raise _fail("pages setup failed", measured)
    return dict(json.loads(measured.stdout))


class AudiencesSqlite(SqliteBench):
    """A SQLite template with the audiences data (``bench.datagen_audiences``)."""

    data: dict[str, Any]

    def prepare(self, spec: AudienceSpec) -> None:  # type: ignore[override]
        self.template.data_dir.mkdir(parents=True)
        migrate(self.template)
        path = self.template.data_dir / "tagbase.sqlite3"
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            # Tagbase's settings but SQLite's small default page cache: the harness stays small
            # (its peak RSS is the floor of every child's ru_maxrss, see bench/measure.py).
            for pragma in SQLITE_PRAGMAS[:-1]:
                conn.execute(pragma)
            datagen_audiences.fill(conn, "sqlite", spec, _anchor())
        finally:
            conn.close()
        setup = _setup(self.template)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            self.data, problems = datagen_audiences.check(conn.cursor(), "sqlite", spec)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
        finally:
            conn.close()
        if problems:
            raise BenchError("the generated data is inconsistent: " + "; ".join(problems[:10]))
        self.data |= {"setup": setup, "database_mb": round(path.stat().st_size / 2**20)}

    def checker(self, run: RunDatabase) -> Any:
        return sqlite3.connect(run.data_dir / "tagbase.sqlite3", isolation_level=None)


class AudiencesPostgres(PostgresBench):
    """A PostgreSQL template with the audiences data; ``suffix`` keeps two templates of one
    harness apart (``tagbase_bench_<pid>_<suffix>``)."""

    data: dict[str, Any]

    def __init__(
        self, root: Path, server_url: str = DEFAULT_POSTGRES_URL, suffix: str = ""
    ) -> None:
        super().__init__(root, server_url)
        if suffix:
            self.prefix = f"tagbase_bench_{os.getpid()}_{suffix}"
            self.template = RunDatabase(
                "template", root / f"pg-template-{suffix}", self._url(self.prefix)
            )

    def prepare(self, spec: AudienceSpec) -> None:  # type: ignore[override]
        import psycopg

        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.prefix}"')
        self.created.append(self.prefix)
        self.template.data_dir.mkdir(parents=True)
        migrate(self.template)
        with psycopg.connect(self.template.url, autocommit=True) as conn:
            datagen_audiences.fill(conn, "postgres", spec, _anchor())
        setup = _setup(self.template)
        with psycopg.connect(self.template.url, autocommit=True) as conn:
            # The steady state of a live database: statistics known, visibility map set.
            conn.execute("VACUUM ANALYZE")
            self.data, problems = datagen_audiences.check(conn.cursor(), "postgres", spec)
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            self.data["database_mb"] = round(size[0] / 2**20)  # type: ignore[index]
        if problems:
            raise BenchError("the generated data is inconsistent: " + "; ".join(problems[:10]))
        self.data["setup"] = setup
        with self._admin() as conn:
            # No connection (autovacuum included) may hold the template while it is copied.
            conn.execute(f'ALTER DATABASE "{self.prefix}" ALLOW_CONNECTIONS false')

    def checker(self, run: RunDatabase) -> Any:
        import psycopg

        return psycopg.connect(run.url, autocommit=True)


AudiencesDb = AudiencesSqlite | AudiencesPostgres


def open_audiences_database(
    engine: str, root: Path, postgres_url: str, suffix: str = ""
) -> AudiencesDb:
    if engine == "sqlite":
        return AudiencesSqlite(root / suffix if suffix else root)
    if engine == "postgres":
        return AudiencesPostgres(root, postgres_url, suffix)
    raise BenchError(f"unknown database {engine!r} (sqlite or postgres)")


def prepare_audiences(
    engine: str, root: Path, spec: AudienceSpec, postgres_url: str, log: Log, suffix: str = ""
) -> tuple[AudiencesDb, float]:
    """A prepared template (the caller closes it, also on an error) and its seconds."""
    db = open_audiences_database(engine, root, postgres_url, suffix)
    try:
        log(
            f"[{engine}] preparing: migrate, {spec.customers:,} customers, {spec.audiences:,} "
            f"audiences, {spec.memberships:,} memberships"
        )
        clock = time.perf_counter()
        db.prepare(spec)
        setup_s = round(time.perf_counter() - clock, 1)
        log(f"[{engine}] prepared in {setup_s} s: {db.data['rows']}")
    except BaseException:
        db.close()
        raise
    return db, setup_s


# --- Runs -----------------------------------------------------------------------------------


def _fail(what: str, measured: Measured) -> BenchError:
    return BenchError(
        f"{what}\n--- stdout (end) ---\n{measured.stdout[-2000:]}\n"
        f"--- stderr (end) ---\n{measured.stderr[-4000:]}"
    )


def run_child(side: str, run: RunDatabase, extra: list[str]) -> tuple[Measured, dict[str, Any]]:
    argv = [sys.executable, "-m", "bench.pages_child", side, *extra]
    if side == "baseline":
        argv += run.baseline_args
    measured = run_measured(argv, child_env(run), str(machine.ROOT))
    if measured.returncode != 0:
        raise _fail(f"pages {side} exited with {measured.returncode}", measured)
    try:
        return measured, json.loads(measured.stdout)
    except ValueError:
        raise _fail(f"pages {side} did not print a JSON result", measured) from None


def check(tagbase: dict[str, Any], baseline: dict[str, Any], spec: AudienceSpec) -> list[str]:
    """Every way Tagbase's pages differ from the baseline's rows (empty when right)."""
    problems = []
    rows = {"list": min(50, spec.audiences), "sort": min(50, spec.audiences)}
    for name in PAGES:
        got, want = tagbase["pages"][name]["shown"], baseline["pages"][name]["shown"]
        if got["ids"] != want["ids"]:
            problems.append(
                f"{name}: the page links audiences {got['ids'][:8]}…, the SQL gives "
                f"{want['ids'][:8]}… ({len(got['ids'])} vs {len(want['ids'])})"
            )
        if name in LIST_PAGES and got["counts"] != want["counts"]:
            problems.append(
                f"{name}: member counts shown {got['counts'][:8]}…, stored {want['counts'][:8]}…"
            )
        if name in rows and len(want["ids"]) != rows[name]:
            problems.append(f"{name}: {len(want['ids'])} rows, expected {rows[name]}")
    if len(want_profile := baseline["pages"]["profile"]["shown"]["ids"]) != spec.profile_audiences:
        problems.append(
            f"profile: {len(want_profile)} audiences, expected {spec.profile_audiences}"
        )
    return problems


def check_small(counted: dict[str, Any], spec: AudienceSpec) -> list[str]:
    pages = counted["pages"]
    problems = []
    if sorted(pages["list"]["shown"]["ids"]) != list(range(1, spec.audiences + 1)):
        problems.append(f"10 audiences: the list links {pages['list']['shown']['ids']}")
    if len(pages["profile"]["shown"]["ids"]) != spec.profile_audiences:
        problems.append(f"10 audiences: the profile links {pages['profile']['shown']['ids']}")
    if not pages["search"]["shown"]["ids"]:
        problems.append("10 audiences: the search finds nothing (its page would differ)")
    return problems


def _runs(
    db: AudiencesDb, spec: AudienceSpec, runs: int, extra: list[str], log: Log
) -> list[dict[str, Any]]:
    run = db.clone("pages")
    results = []
    try:
        for number in range(1, runs + 1):
            outputs = {}
            for kind in KINDS:
                load = machine.load_average()
                measured, out = run_child(kind, run, extra)
                outputs[kind] = out
                results.append(
                    {"kind": kind, "run": number, "load_before": load}
                    | _figures(measured)
                    | {"result": out}
                )
                log(
                    f"[{db.engine}] pages {kind} run {number}: "
                    + ", ".join(
                        f"{n} p95 {percentile(out['pages'][n]['calls_ms'], 95):.1f} ms"
                        for n in PAGES
                    )
                )
            problems = check(outputs["tagbase"], outputs["baseline"], spec)
            if problems:
                raise BenchError("Tagbase's pages differ from the SQL: " + "; ".join(problems))
    finally:
        db.drop(run)
    return results


def _count_small(engine: str, root: Path, postgres_url: str, log: Log) -> dict[str, Any]:
    small, _ = prepare_audiences(engine, root, SMALL_SPEC, postgres_url, log, suffix="s10")
    try:
        run = small.clone("count")
        try:
            measured, out = run_child("count", run, [])
        finally:
            small.drop(run)
    finally:
        small.close()
    problems = check_small(out, SMALL_SPEC)
    if problems:
        raise _fail("; ".join(problems), measured)
    return dict(out)


# --- Summary --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, linear between the closest ranks (as numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 2),
        "p95": round(percentile(values, 95), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2) if values else 0.0,
        "mean": round(statistics.fmean(values), 2) if values else 0.0,
    }


def summarize(results: list[dict[str, Any]], counted: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for kind in KINDS:
        mine = [r for r in results if r["kind"] == kind]
        part = _process(mine)
        part["pages"] = {}
        for name in PAGES:
            pages = [r["result"]["pages"][name] for r in mine]
            figures = spread_ms([ms for p in pages for ms in p["calls_ms"]])
            figures["p95_per_run"] = [round(percentile(p["calls_ms"], 95), 2) for p in pages]
            figures["first_ms_median"] = round(statistics.median(p["first_ms"] for p in pages), 2)
            figures["queries"] = pages[-1]["queries"]
            if kind == "tagbase":
                figures["cpu_ms"] = spread_ms([ms for p in pages for ms in p["cpu_ms"]])
                figures["logged_ms"] = pages[-1]["logged_ms"]
                figures["sql_ms"] = pages[-1]["sql_ms"]
            part["pages"][name] = figures
        if kind == "baseline":
            counts = [ms for r in mine for ms in r["result"]["pages"]["count_rows"]["calls_ms"]]
            part["count_rows_ms"] = spread_ms(counts)
        summary[kind] = part
    summary["ratio"] = {
        name: round(
            summary["baseline"]["pages"][name]["p50"] / summary["tagbase"]["pages"][name]["p50"], 4
        )
        for name in PAGES
    }
    last = results[-1]["result"]["pages"]
    summary["queries"] = {
        "many": {n: last[n]["queries"] for n in last},
        "few": {n: p["queries"] for n, p in counted["pages"].items()},
    }
    return summary


def bars(engine: str, spec: AudienceSpec, summary: dict[str, Any]) -> list[dict[str, Any]]:
    at_size = spec == BAR_SPEC
    out = []
    for name in PAGES:
        value = summary["tagbase"]["pages"][name]["p95"]
        out.append(
            {
                "name": f"{engine} {name}: server time p95 (ms)",
                "bar": f"<= {P95_BAR_MS:g}",
                "value": value,
                "pass": value <= P95_BAR_MS,
                "at_defined_size": at_size,
            }
        )
    many, few = summary["queries"]["many"], summary["queries"]["few"]
    for name in LIST_PAGES:
        out.append(
            {
                "name": f"{name}: queries at {spec.audiences:,} = at 10 audiences",
                "bar": "equal",
                "value": f"{many[name]} vs {few[name]}",
                "pass": many[name] == few[name],
                "at_defined_size": at_size,
            }
        )
    profile = [many["profile"], many["profile_few"], many["profile_none"]]
    out.append(
        {
            "name": f"profile: queries in {spec.profile_audiences} / {spec.few} / 0 audiences",
            "bar": "equal",
            "value": " / ".join(str(n) for n in profile),
            "pass": len(set(profile)) == 1,
            "at_defined_size": at_size,
        }
    )
    return out


def bench_pages(
    engine: str,
    root: Path,
    spec: AudienceSpec,
    runs: int,
    requests: int,
    postgres_url: str = DEFAULT_POSTGRES_URL,
    log: Log = print,
    prepared: tuple[AudiencesDb, float] | None = None,
) -> dict[str, Any]:
    """Prepare (unless given a prepared template, which the caller then closes), run,
    summarize. Every database created here is dropped on the way out, whatever happens."""
    if requests < 1:
        raise ValueError(f"--requests must be at least 1 (got {requests})")
    started = datetime.now(UTC)
    load_start = machine.load_average()
    warnings = [w for w in [machine.load_warning(load_start, "at start")] if w]
    own = prepared is None
    db, setup_s = prepared or prepare_audiences(engine, root, spec, postgres_url, log)
    try:
        info = db.server_info()
        if isinstance(db, PostgresBench) and (stale := db.stale_databases()):
            warnings.append(f"bench databases left by killed runs (drop them by hand): {stale}")
        counted = _count_small(engine, root, postgres_url, log)
        extra = ["--requests", str(requests)]
        results = _runs(db, spec, runs, extra, log)
    finally:
        if own:
            db.close()
    load_end = machine.load_average()
    if warning := machine.load_warning(load_end, "at end"):
        warnings.append(warning)
    summary = summarize(results, counted)
    return {
        "benchmark": "pages",
        "db": engine,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {**spec.as_dict(), "runs": runs, "requests": requests},
        "pages": {name: {"url": url, "what": what} for name, (url, what) in PAGES.items()},
        "data": db.data,
        "machine": {**machine.describe(), **info},
        "load_average": {"start": load_start, "end": load_end},
        "setup_s": setup_s,
        "warnings": warnings,
        "summary": summary,
        "bars": bars(engine, spec, summary),
        "counted_at_10_audiences": counted,
        "runs": results,
    }


# --- The table ------------------------------------------------------------------------------


def _ms_cell(f: dict[str, Any]) -> str:
    return f"{f['p50']:.1f} / {f['p95']:.1f} / {f['max']:.1f}"


def pages_table(result: dict[str, Any], saved: Path | None = None) -> str:
    s, m, p, d = result["summary"], result["machine"], result["params"], result["data"]
    lines = [
        "",
        f"== Pages benchmark: {result['db']}, {p['customers']:,} customers, "
        f"{p['audiences']:,} audiences, {p['memberships']:,} memberships "
        f"({d['database_mb']:,} MB; largest audience {d['largest_audience']:,}), "
        f"{p['runs']} run(s) x {p['requests']} requests per page",
        f"  machine: {m['nproc']} cores, {m['memory_mb']} MB, {m['cpu_model']}",
        f"  load average: start {report._load(result['load_average']['start'])}, "
        f"end {report._load(result['load_average']['end'])}",
        f"  {'page':<9} {'':<9} {'ms p50 / p95 / max':<24} {'p95 per run':<20} "
        f"{'queries':>7}  {'first':>7}  ratio",
    ]
    for name in result["pages"]:
        for kind in KINDS:
            f = s[kind]["pages"][name]
            per_run = " ".join(f"{x:.1f}" for x in f["p95_per_run"])
            ratio = f"{s['ratio'][name]:.3f}" if kind == "tagbase" else ""
            extra = (
                f"  (CPU p50 / p95 {f['cpu_ms']['p50']:.1f} / {f['cpu_ms']['p95']:.1f}; logged "
                f"request {f['logged_ms']:.1f} ms, of which SQL {f['sql_ms']:.1f})"
                if kind == "tagbase"
                else ""
            )
            lines.append(
                f"  {name if kind == 'baseline' else '':<9} {kind:<9} {_ms_cell(f):<24} "
                f"{per_run:<20} {f['queries']:>7}  {f['first_ms_median']:>7.1f}  {ratio}{extra}"
            )
    c = s["baseline"]["count_rows_ms"]
    q = s["queries"]
    lines += [
        f"  without stored counts: GROUP BY over every membership {c['p50']:.0f} ms (median of "
        f"{c['n']}), what a list sorted by count would cost",
        f"  queries at {p['audiences']:,} audiences: "
        + ", ".join(f"{k} {v}" for k, v in q["many"].items()),
        "  queries at 10 audiences: " + ", ".join(f"{k} {v}" for k, v in q["few"].items()),
        f"  process peak RSS MB: baseline {s['baseline']['max_rss_mb_median']:.0f}, "
        f"tagbase {s['tagbase']['max_rss_mb_median']:.0f}",
        "  ratio = baseline p50 / Tagbase p50; server time = a test client request, no network;",
        "  CPU = the Tagbase process's own CPU time in the request (on SQLite with the database's)",
        "  bars (quality.md §5):",
        *(report._verdict(b) for b in result["bars"]),
        *(f"  WARNING: {w}" for w in result["warnings"]),
    ]
    if saved:
        lines.append(f"  result: {saved}")
    return "\n".join(lines)
