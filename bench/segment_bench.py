"""The segment benchmark: previews and "Include in a target audience", Tagbase against plain SQL.

For each database: a template migrated and filled with N customers, their receipts (and the
receipt metrics Tagbase computes from them) and their events (``bench.datagen``). Then, per run,
alternating baseline and Tagbase on a fresh clone of the template each (machine noise spreads
over both): a preview process (two rules, ``--repeats`` calls each), an *add* process (the
members rule, ~all customers, into an empty audience) and a *remove* process (the same members
out of it again). Every process is measured on its own (``bench.measure``), and its result is
checked against hand-written SQL on the same database before its figures are kept: a wrong
count, metric, sample or membership stops everything (``BenchError``).
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench import datagen, machine, report
from bench.baseline_import import SQLITE_PRAGMAS
from bench.databases import (
    DEFAULT_POSTGRES_URL,
    BenchError,
    PostgresBench,
    RunDatabase,
    SqliteBench,
    migrate,
)
from bench.import_bench import _figures
from bench.measure import Measured, run_measured
from bench.segment_child import PREVIEW_RULES, expected, five_metrics

Log = Callable[[str], None]
SCENARIOS = ("preview", "add", "remove")
KINDS = ("baseline", "tagbase")
# quality.md §5: "Segment preview (count + five metrics) over 1M customers with receipts: ≤ 1 s";
# "Add a 1M-customer segment to an audience, and remove it: ≥ 0.7 x plain INSERT … SELECT /
# DELETE on the same engine".
PREVIEW_BAR_S = 1.0
CHANGE_RATIO_BAR = 0.7
BAR_SIZE = 1_000_000
# Settings that would change what the children compute or how (the clock's time zone, the
# connection's lifetime); RunDatabase.env already drops TAGBASE_* and DATABASE_URL.
DROPPED_ENV = ("TIME_ZONE", "DB_CONN_MAX_AGE")
TABLES = (
    "customers_customer",
    "customers_receipt",
    "customers_customerstats",
    "customers_event",
)


def child_env(run: RunDatabase) -> dict[str, str]:
    return {k: v for k, v in run.env().items() if k not in DROPPED_ENV}


def _refresh_stats(run: RunDatabase) -> None:
    """The receipt metrics, computed by Tagbase itself (as after a receipts load)."""
    done = subprocess.run(
        [sys.executable, "-m", "tagbase", "receipts", "refresh-stats"],
        env=child_env(run),
        cwd=machine.ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BenchError(f"tagbase receipts refresh-stats failed:\n{done.stderr[-3000:]}")


def _anchor() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class SegmentSqlite(SqliteBench):
    """The import benchmark's SQLite databases, with the segment data in the template."""

    data: dict[str, Any]

    def prepare(self, customers: int) -> None:
        self.template.data_dir.mkdir(parents=True)
        migrate(self.template)
        path = self.template.data_dir / "tagbase.sqlite3"
        params = {"customers": customers, "anchor": _anchor().replace(tzinfo=None).isoformat(" ")}
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            # Tagbase's settings but SQLite's small default page cache: the harness stays small
            # (its peak RSS is the floor of every child's ru_maxrss, see bench/measure.py).
            for pragma in SQLITE_PRAGMAS[:-1]:
                conn.execute(pragma)
            conn.execute("BEGIN")
            conn.execute(datagen.segment_customers_sql("sqlite"), params)
            conn.execute(datagen.receipts_sql("sqlite"), params)
            conn.execute(datagen.events_sql("sqlite"), params)
            conn.execute("COMMIT")
        finally:
            conn.close()
        _refresh_stats(self.template)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
            self.data = _describe_data(conn.cursor(), "sqlite")
        finally:
            conn.close()
        self.data["database_mb"] = round(path.stat().st_size / 2**20)

    def checker(self, run: RunDatabase) -> Any:
        return sqlite3.connect(run.data_dir / "tagbase.sqlite3", isolation_level=None)


class SegmentPostgres(PostgresBench):
    """The import benchmark's PostgreSQL databases, with the segment data in the template."""

    data: dict[str, Any]

    def prepare(self, customers: int) -> None:
        import psycopg

        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.prefix}"')
        self.created.append(self.prefix)
        self.template.data_dir.mkdir(parents=True)
        migrate(self.template)
        params = {"customers": customers, "anchor": _anchor()}
        with psycopg.connect(self.template.url, autocommit=True) as conn, conn.transaction():
            conn.execute(datagen.segment_customers_sql("postgres"), params)  # type: ignore[arg-type]
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('customers_customer', 'sc_id'), %s)",
                (customers,),
            )
            conn.execute(datagen.receipts_sql("postgres"), params)  # type: ignore[arg-type]
            conn.execute(datagen.events_sql("postgres"), params)  # type: ignore[arg-type]
        _refresh_stats(self.template)
        with psycopg.connect(self.template.url, autocommit=True) as conn:
            # The steady state of a live database: statistics known, visibility map set.
            for table in TABLES:
                conn.execute(f"VACUUM ANALYZE {table}")  # type: ignore[arg-type]
            self.data = _describe_data(conn.cursor(), "postgres")
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            self.data["database_mb"] = round(size[0] / 2**20)  # type: ignore[index]
        with self._admin() as conn:
            # No connection (autovacuum included) may hold the template while it is copied.
            conn.execute(f'ALTER DATABASE "{self.prefix}" ALLOW_CONNECTIONS false')

    def checker(self, run: RunDatabase) -> Any:
        import psycopg

        return psycopg.connect(run.url, autocommit=True)


def _describe_data(cur: Any, engine: str) -> dict[str, Any]:
    """Row counts, and what each rule selects today (informative: every run is checked)."""
    rows = {}
    for table in TABLES:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        rows[table] = int(cur.fetchone()[0])
    want = expected(cur, engine, datetime.now(UTC).date())
    return {
        "rows": rows,
        "members_rule_selects": want["members"],
        "preview_rules_select": {n: p["customers"] for n, p in want["previews"].items()},
    }


def open_segment_database(
    engine: str, root: Path, postgres_url: str
) -> SegmentSqlite | SegmentPostgres:
    if engine == "sqlite":
        return SegmentSqlite(root)
    if engine == "postgres":
        return SegmentPostgres(root, postgres_url)
    raise BenchError(f"unknown database {engine!r} (sqlite or postgres)")


# --- One run --------------------------------------------------------------------------------


def _fail(what: str, measured: Measured) -> BenchError:
    return BenchError(
        f"{what}\n--- stdout (end) ---\n{measured.stdout[-2000:]}\n"
        f"--- stderr (end) ---\n{measured.stderr[-4000:]}"
    )


class Checker:
    """The expected figures of a run's database, per day (a run crossing midnight gets both)."""

    def __init__(self, db: Any, run: RunDatabase) -> None:
        self.db, self.run = db, run
        self.cache: dict[str, dict[str, Any]] = {}

    def want(self, today: str) -> dict[str, Any]:
        if today not in self.cache:
            conn = self.db.checker(self.run)
            try:
                self.cache[today] = expected(
                    conn.cursor(), self.db.engine, date.fromisoformat(today)
                )
            finally:
                conn.close()
        return self.cache[today]


def check(
    kind: str, scenario: str, out: dict[str, Any], checker: Checker, audience: str
) -> list[str]:
    """Every way a child's result differs from a correct one (empty when right)."""
    want = checker.want(out["today"])
    problems = []
    if scenario == "preview":
        for name in PREVIEW_RULES:
            got = out["rules"][name]["result"]
            right = (
                want["previews"][name]
                if kind == "baseline"
                else five_metrics(want["previews"][name])
            )
            for key, value in right.items():
                if got.get(key) != value:
                    problems.append(f"{name}: {key} = {got.get(key)!r}, expected {value!r}")
        return problems
    n = want["members"]
    rows = checker.db.count_members(checker.run, audience)
    after = n if scenario == "add" else 0
    if out["changed"] != n:
        problems.append(f"{scenario} changed {out['changed']} memberships, expected {n}")
    if rows != after:
        problems.append(f"the audience holds {rows} members, expected {after}")
    if kind == "tagbase":
        if out["status"] != "succeeded":
            problems.append(f"job {out['status']}: {out['error']}")
        if out["expected"] != n:
            problems.append(f"the job announced {out['expected']}, expected {n}")
        if out["member_count"] != after or out["rows"] != after:
            problems.append(f"member_count {out['member_count']}, rows {out['rows']}: {after}")
    return problems


def run_child(
    kind: str, scenario: str, run: RunDatabase, audience: str, repeats: int
) -> tuple[Measured, dict[str, Any]]:
    argv = [sys.executable, "-m", "bench.segment_child", kind, scenario]
    argv += ["--audience", audience, "--repeats", str(repeats)]
    if kind == "baseline":
        argv += run.baseline_args
    measured = run_measured(argv, child_env(run), str(machine.ROOT))
    if measured.returncode != 0:
        raise _fail(f"{kind} {scenario} exited with {measured.returncode}", measured)
    try:
        return measured, json.loads(measured.stdout)
    except ValueError:
        raise _fail(f"{kind} {scenario} did not print a JSON result", measured) from None


def _one_run(db: Any, kind: str, number: int, repeats: int, log: Log) -> list[dict[str, Any]]:
    run = db.clone(f"{kind[0]}{number}")
    checker = Checker(db, run)
    audience = f"bench-{kind}-{number}"
    results = []
    try:
        for scenario in SCENARIOS:
            load = machine.load_average()
            measured, out = run_child(kind, scenario, run, audience, repeats)
            problems = check(kind, scenario, out, checker, audience)
            if problems:
                raise _fail(
                    f"{kind} {scenario} gave a wrong result: " + "; ".join(problems), measured
                )
            results.append(
                {"kind": kind, "scenario": scenario, "run": number, "load_before": load}
                | _figures(measured)
                | {"result": out}
            )
            log(f"[{db.engine}] {kind} {scenario} run {number}: {_said(scenario, out)}")
    finally:
        db.drop(run)
    return results


def _said(scenario: str, out: dict[str, Any]) -> str:
    if scenario == "preview":
        return ", ".join(
            f"{name} {max(r['calls_s']):.3f} s max ({r['result']['customers']:,} members)"
            for name, r in out["rules"].items()
        )
    return f"{out['total_s']:.2f} s, {out['changed']:,} memberships"


# --- Summary --------------------------------------------------------------------------------


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def _process(mine: list[dict[str, Any]]) -> dict[str, Any]:
    """The processes' wall time and peak RSS (the interpreter and Django included)."""
    rss = [r["max_rss_kb"] / 1024 for r in mine]
    return {
        "processes": len(mine),
        "wall_s_median": round(statistics.median(r["wall_s"] for r in mine), 3),
        "max_rss_mb_median": round(statistics.median(rss), 1),
        "max_rss_mb_max": round(max(rss), 1),
        "rss_anon_mb_median": round(
            statistics.median(r["rss_anon_peak_kb"] for r in mine) / 1024, 1
        ),
        "rss_file_mb_median": round(
            statistics.median(r["rss_file_peak_kb"] for r in mine) / 1024, 1
        ),
    }


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for scenario in SCENARIOS:
        part: dict[str, Any] = {}
        for kind in KINDS:
            mine = [r for r in results if r["kind"] == kind and r["scenario"] == scenario]
            figures = _process(mine)
            if scenario == "preview":
                figures["rules"] = {
                    name: {
                        "calls": sum(len(r["result"]["rules"][name]["calls_s"]) for r in mine),
                        "s": _spread(
                            [s for r in mine for s in r["result"]["rules"][name]["calls_s"]]
                        ),
                        "first_call_s_median": round(
                            statistics.median(
                                r["result"]["rules"][name]["calls_s"][0] for r in mine
                            ),
                            4,
                        ),
                        "members": mine[-1]["result"]["rules"][name]["result"]["customers"],
                    }
                    for name in PREVIEW_RULES
                }
            else:
                figures["s"] = _spread([r["result"]["total_s"] for r in mine])
                steps = mine[0]["result"]["steps_s"]
                figures["step_s_median"] = {
                    step: round(statistics.median(r["result"]["steps_s"][step] for r in mine), 4)
                    for step in steps
                }
                figures["memberships"] = mine[-1]["result"]["changed"]
            part[kind] = figures
        if scenario == "preview":
            part["ratio"] = {
                name: round(
                    part["baseline"]["rules"][name]["s"]["median"]
                    / part["tagbase"]["rules"][name]["s"]["median"],
                    3,
                )
                for name in PREVIEW_RULES
            }
        else:
            part["ratio"] = round(
                part["baseline"]["s"]["median"] / part["tagbase"]["s"]["median"], 3
            )
        summary[scenario] = part
    return summary


def bars(engine: str, customers: int, summary: dict[str, Any]) -> list[dict[str, Any]]:
    at_size = customers == BAR_SIZE
    out = []
    for name in PREVIEW_RULES:
        value = summary["preview"]["tagbase"]["rules"][name]["s"]["median"]
        out.append(
            {
                "name": f"{engine} preview, {name} rule (s, median)",
                "bar": f"<= {PREVIEW_BAR_S}",
                "value": value,
                "pass": value <= PREVIEW_BAR_S,
                "at_defined_size": at_size,
            }
        )
    for scenario, plain in (("add", "INSERT … SELECT"), ("remove", "DELETE … WHERE")):
        ratio = summary[scenario]["ratio"]
        out.append(
            {
                "name": f"{scenario}: Tagbase rate / {plain} rate",
                "bar": f">= {CHANGE_RATIO_BAR}",
                "value": ratio,
                "pass": ratio >= CHANGE_RATIO_BAR,
                "at_defined_size": at_size,
            }
        )
    return out


def bench_segment(
    engine: str,
    root: Path,
    customers: int,
    runs: int,
    repeats: int,
    postgres_url: str = DEFAULT_POSTGRES_URL,
    log: Log = print,
) -> dict[str, Any]:
    """Prepare the engine's template, run, summarize. Every database is dropped on the way
    out, whatever happens."""
    if customers < 100:
        raise ValueError(f"--customers must be at least 100 (got {customers})")
    started = datetime.now(UTC)
    load_start = machine.load_average()
    warnings = [w for w in [machine.load_warning(load_start, "at start")] if w]
    db = open_segment_database(engine, root, postgres_url)
    results: list[dict[str, Any]] = []
    try:
        info = db.server_info()
        if isinstance(db, PostgresBench) and (stale := db.stale_databases()):
            warnings.append(f"bench databases left by killed runs (drop them by hand): {stale}")
        log(f"[{engine}] preparing: migrate, {customers:,} customers, receipts, events, metrics")
        clock = time.perf_counter()
        db.prepare(customers)
        setup_s = round(time.perf_counter() - clock, 1)
        log(f"[{engine}] prepared in {setup_s} s: {db.data}")
        for number in range(1, runs + 1):
            for kind in KINDS:
                results += _one_run(db, kind, number, repeats, log)
    finally:
        db.close()
    load_end = machine.load_average()
    if warning := machine.load_warning(load_end, "at end"):
        warnings.append(warning)
    summary = summarize(results)
    return {
        "benchmark": "segment",
        "db": engine,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {"customers": customers, "runs": runs, "repeats": repeats},
        "data": db.data,
        "machine": {**machine.describe(), **info},
        "load_average": {"start": load_start, "end": load_end},
        "setup_s": setup_s,
        "warnings": warnings,
        "summary": summary,
        "bars": bars(engine, customers, summary),
        "runs": results,
    }


# --- The table ------------------------------------------------------------------------------


def _rss(p: dict[str, Any]) -> str:
    return (
        f"{p['max_rss_mb_median']:.0f} [{p['max_rss_mb_max']:.0f}] "
        f"({p['rss_anon_mb_median']:.0f} / {p['rss_file_mb_median']:.0f})"
    )


def _s(spread: dict[str, float]) -> str:
    return f"{spread['median']:.3f} [{spread['min']:.3f}-{spread['max']:.3f}]"


def segment_table(result: dict[str, Any], saved: Path | None = None) -> str:
    s, m, d, p = result["summary"], result["machine"], result["data"], result["params"]
    rows = d["rows"]
    lines = [
        "",
        f"== Segment benchmark: {result['db']}, {rows['customers_customer']:,} customers "
        f"({rows['customers_receipt']:,} receipts, {rows['customers_customerstats']:,} with "
        f"receipt metrics, {rows['customers_event']:,} events; {d['database_mb']:,} MB), "
        f"{p['runs']} run(s) each, {p['repeats']} preview call(s) per rule and run",
        f"  machine: {m['nproc']} cores, {m['memory_mb']} MB, {m['cpu_model']}",
        f"  load average: start {report._load(result['load_average']['start'])}, "
        f"end {report._load(result['load_average']['end'])}",
        f"  {'':<24} {'s median [min-max]':<26} {'ratio':>6}  "
        "process peak RSS MB median [max] (anon / file)",
    ]
    for name in PREVIEW_RULES:
        members = s["preview"]["tagbase"]["rules"][name]["members"]
        lines.append(f"  preview, {name} rule: {members:,} members")
        for kind in KINDS:
            r = s["preview"][kind]["rules"][name]
            ratio = f"{s['preview']['ratio'][name]:.3f}" if kind == "tagbase" else ""
            lines.append(
                f"    {kind:<22} {_s(r['s']):<26} {ratio:>6}  {_rss(s['preview'][kind])}"
                f"  first call {r['first_call_s_median']:.3f}"
            )
    for scenario in ("add", "remove"):
        lines.append(f"  {scenario}: {s[scenario]['tagbase']['memberships']:,} memberships")
        for kind in KINDS:
            r = s[scenario][kind]
            ratio = f"{s[scenario]['ratio']:.3f}" if kind == "tagbase" else ""
            steps = ", ".join(f"{k} {v:.2f}" for k, v in r["step_s_median"].items())
            lines.append(f"    {kind:<22} {_s(r['s']):<26} {ratio:>6}  {_rss(r)}  ({steps})")
    lines += [
        "  ratio = baseline seconds / Tagbase seconds (medians): Tagbase's rate / the baseline's",
        "  bars (quality.md §5):",
        *(report._verdict(b) for b in result["bars"]),
        *(f"  WARNING: {w}" for w in result["warnings"]),
    ]
    if saved:
        lines.append(f"  result: {saved}")
    return "\n".join(lines)
