"""The import benchmark: Tagbase's CLI import against the plain-SQL baseline, same run.

For each database: a template migrated and filled with N customers; then, alternating
baseline, Tagbase, baseline, Tagbase… (to spread machine noise over both), each run on its
own fresh clone of the template, importing the same generated file. A run's result is checked
before its figures are kept: Tagbase's report must satisfy the accounting identity and give
exactly the expected counters, the baseline must stage and insert the expected numbers, and
the audience must hold exactly the known customers in the database afterwards. A benchmark of
a wrong result is worthless, so any mismatch stops everything (``BenchError``).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine
from bench.databases import BenchError, RunDatabase, open_bench_database
from bench.datagen import FileSpec
from bench.measure import Measured, run_measured

Log = Callable[[str], None]
BASELINE_SCRIPT = Path(__file__).with_name("baseline_import.py")
STAGES = ("parse", "resolve", "apply", "report")  # Tagbase's per-stage timings
BASELINE_STEPS = ("stage", "insert", "commit")
# quality.md §5, "Import a 1M-line file": lines/s end to end on 2 cores, and the ratio.
RATE_BARS = {"sqlite": 250_000, "postgres": 80_000}
RATIO_BAR = 0.5
BAR_SIZE = 1_000_000  # the bars are defined for 1M lines and 1M customers
# The report fields that must add up to rows_read (docs/imports.md, add mode).
IDENTITY = (
    "blank",
    "invalid",
    "duplicate_in_file",
    "not_found",
    "ambiguous",
    "already_member",
    "added",
)


def _fail(what: str, measured: Measured) -> BenchError:
    return BenchError(
        f"{what}\n--- stdout (end) ---\n{measured.stdout[-2000:]}\n"
        f"--- stderr (end) ---\n{measured.stderr[-4000:]}"
    )


def _figures(measured: Measured) -> dict[str, Any]:
    return {
        "wall_s": round(measured.wall_s, 3),
        "user_s": round(measured.user_s, 3),
        "sys_s": round(measured.sys_s, 3),
        "max_rss_kb": measured.max_rss_kb,
        "peak_source": measured.peak_source,
        "ru_maxrss_kb": measured.ru_maxrss_kb,
        "harness_peak_kb": measured.harness_peak_kb,
        "vm_hwm_kb": measured.vm_hwm_kb,
        "rss_anon_peak_kb": measured.anon_peak_kb,
        "rss_file_peak_kb": measured.file_peak_kb,
        "rss_timeline": measured.timeline,
    }


def expected_report(spec: FileSpec) -> dict[str, int]:
    return {
        "rows_read": spec.lines,
        "blank": 0,
        "invalid": spec.invalid,
        "duplicate_in_file": spec.duplicate,
        "not_found": spec.unknown,
        "ambiguous": 0,
        "already_member": 0,
        "added": spec.known,
    }


def check_tagbase_report(report: dict[str, Any], spec: FileSpec) -> list[str]:
    """Every way the report differs from a correct import of the file (empty when right)."""
    problems = []
    if report.get("status") != "succeeded_with_rejections":
        problems.append(f"status {report.get('status')!r}, error {report.get('error')!r}")
    total = sum(int(report.get(k, 0)) for k in IDENTITY)
    if total != report.get("rows_read"):
        problems.append(
            f"accounting identity broken: rows_read {report.get('rows_read')} != {total}"
        )
    for key, want in expected_report(spec).items():
        if report.get(key) != want:
            problems.append(f"{key} = {report.get(key)!r}, expected {want}")
    return problems


def run_tagbase(db: Any, run: RunDatabase, spec: FileSpec, audience: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "tagbase", "import", spec.path, "--audience", audience]
    measured = run_measured([*argv, "--id-type", "sc_id", "--json"], run.env(), str(machine.ROOT))
    if measured.returncode != 0:
        raise _fail(f"tagbase import exited with {measured.returncode}", measured)
    try:
        report = json.loads(measured.stdout)
    except ValueError:
        raise _fail("tagbase import did not print a JSON report", measured) from None
    problems = check_tagbase_report(report, spec)
    members = db.count_members(run, audience)
    if members != spec.known:
        problems.append(f"the audience holds {members} members, expected {spec.known}")
    if problems:
        raise _fail("tagbase import gave a wrong result: " + "; ".join(problems), measured)
    counters = {k: report[k] for k in ("rows_read", *IDENTITY)}
    return {
        **_figures(measured),
        "timings": report.get("timings", {}),
        "report": {**counters, "invalid_by_reason": report["invalid_by_reason"]},
    }


def run_baseline(db: Any, run: RunDatabase, spec: FileSpec, audience: str) -> dict[str, Any]:
    argv = [sys.executable, str(BASELINE_SCRIPT), spec.path, "--audience", audience]
    measured = run_measured([*argv, *run.baseline_args], run.env(), str(machine.ROOT))
    if measured.returncode != 0:
        raise _fail(f"baseline exited with {measured.returncode}", measured)
    result = json.loads(measured.stdout)
    members = db.count_members(run, audience)
    want = {"staged": spec.digit_values, "inserted": spec.known}
    got = {"staged": result["staged"], "inserted": result["inserted"]}
    if got != want or members != spec.known:
        raise _fail(
            f"baseline gave a wrong result: {got} (members {members}), expected {want}", measured
        )
    steps = {k: result[k] for k in ("stage", "insert", "commit")}
    return {**_figures(measured), "result": got, "timings": steps}


def _one_run(db: Any, spec: FileSpec, kind: str, number: int) -> dict[str, Any]:
    run = db.clone(f"{kind[0]}{number}")
    load = machine.load_average()
    try:
        if kind == "baseline":
            figures = run_baseline(db, run, spec, f"bench-baseline-{number}")
        else:
            figures = run_tagbase(db, run, spec, f"bench-{number}")
    finally:
        db.drop(run)
    return {"kind": kind, "run": number, "load_before": load, **figures}


def summarize(runs: list[dict[str, Any]], lines: int, kind: str) -> dict[str, Any]:
    mine = [r for r in runs if r["kind"] == kind]
    walls = [r["wall_s"] for r in mine]
    rss = [r["max_rss_kb"] / 1024 for r in mine]
    median = statistics.median(walls)
    out: dict[str, Any] = {
        "runs": len(mine),
        "wall_s_median": round(median, 3),
        "wall_s_min": round(min(walls), 3),
        "wall_s_max": round(max(walls), 3),
        "lines_per_s_median": round(lines / median),
        "lines_per_s_min": round(lines / max(walls)),
        "lines_per_s_max": round(lines / min(walls)),
        "max_rss_mb_median": round(statistics.median(rss), 1),
        "max_rss_mb_max": round(max(rss), 1),
        "rss_anon_mb_median": round(
            statistics.median(r["rss_anon_peak_kb"] for r in mine) / 1024, 1
        ),
        "rss_file_mb_median": round(
            statistics.median(r["rss_file_peak_kb"] for r in mine) / 1024, 1
        ),
    }
    steps = STAGES if kind == "tagbase" else BASELINE_STEPS
    medians = {s: statistics.median(r["timings"].get(s, 0.0) for r in mine) for s in steps}
    outside = statistics.median(r["wall_s"] - sum(r["timings"].values()) for r in mine)
    out["step_s_median"] = {**{s: round(v, 3) for s, v in medians.items()}}
    out["step_s_median"]["outside"] = round(outside, 3)
    return out


def bars(engine: str, lines: int, customers: int, summary: dict[str, Any]) -> list[dict[str, Any]]:
    rate = summary["tagbase"]["lines_per_s_median"]
    at_size = lines == BAR_SIZE and customers == BAR_SIZE
    return [
        {
            "name": f"{engine} import rate (lines/s, median)",
            "bar": f">= {RATE_BARS[engine]:,}",
            "value": rate,
            "pass": rate >= RATE_BARS[engine],
            "at_defined_size": at_size,
        },
        {
            "name": "Tagbase rate / baseline rate",
            "bar": f">= {RATIO_BAR}",
            "value": summary["ratio"],
            "pass": summary["ratio"] >= RATIO_BAR,
            "at_defined_size": at_size,
        },
    ]


def _alternate(db: Any, spec: FileSpec, runs: int, log: Log) -> list[dict[str, Any]]:
    """baseline 1, tagbase 1, baseline 2, tagbase 2…: machine noise spreads over both."""
    results = []
    for number in range(1, runs + 1):
        for kind in ("baseline", "tagbase"):
            result = _one_run(db, spec, kind, number)
            log(
                f"[{db.engine}] {kind} run {number}: {result['wall_s']:.2f} s, "
                f"{result['max_rss_kb'] / 1024:.0f} MB peak RSS"
            )
            results.append(result)
    return results


def bench_database(
    engine: str, root: Path, spec: FileSpec, runs: int, postgres_url: str, log: Log
) -> dict[str, Any]:
    """Prepare the engine's template, run, summarize. Every database is dropped on the way
    out, whatever happens."""
    started = datetime.now(UTC)
    load_start = machine.load_average()
    warnings = [w for w in [machine.load_warning(load_start, "at start")] if w]
    db = open_bench_database(engine, root, postgres_url)
    try:
        info = db.server_info()
        if engine == "postgres" and (stale := db.stale_databases()):
            warnings.append(f"bench databases left by killed runs (drop them by hand): {stale}")
        log(f"[{engine}] preparing: migrate, {spec.customers:,} customers")
        clock = time.perf_counter()
        db.prepare(spec.customers)
        setup_s = round(time.perf_counter() - clock, 1)
        results = _alternate(db, spec, runs, log)
    finally:
        db.close()
    load_end = machine.load_average()
    if warning := machine.load_warning(load_end, "at end"):
        warnings.append(warning)
    summary: dict[str, Any] = {
        k: summarize(results, spec.lines, k) for k in ("baseline", "tagbase")
    }
    tagbase, baseline = summary["tagbase"], summary["baseline"]
    summary["ratio"] = round(tagbase["lines_per_s_median"] / baseline["lines_per_s_median"], 3)
    return {
        "benchmark": "import",
        "db": engine,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {
            "lines": spec.lines,
            "customers": spec.customers,
            "runs": runs,
            "seed": spec.seed,
        },
        "file": spec.as_dict(),
        "machine": {**machine.describe(), **info},
        "load_average": {"start": load_start, "end": load_end},
        "setup_s": setup_s,
        "warnings": warnings,
        "summary": summary,
        "bars": bars(engine, spec.lines, spec.customers, summary),
        "runs": results,
    }
