"""The campaign benchmark: N customers through *date has come* → *filter* → *add to audience*.

For each database: the segment benchmark's template (N customers, their receipts and the receipt
metrics Tagbase computes from them, ``bench.segment_bench``). Then, per run, alternating
baseline and Tagbase on a fresh clone of the template each (machine noise spreads over both):

- **tagbase** (``bench.campaign_child tagbase``): an active campaign whose date trigger has just
  come; on the clock, the tick's ``engine.fire_scheduled`` (every customer enters, set-based)
  and ``engine.run_due`` (the filter "total spent ≥ 10,000" and the audience action, step by
  step as a worker runs them);
- **baseline** (``bench.campaign_child baseline``): one hand-written ``INSERT … SELECT`` of the
  same customers into an audience, and a commit.

Every child's result is checked on its database before its figures are kept: the audience holds
exactly the customers hand-written SQL selects (no more, no fewer, ``member_count`` exact), and
for Tagbase every customer entered, passed the filter once, the positive ones passed the
audience step once (one operation per step), and no token is left. A wrong result stops
everything (``BenchError``). The bar (quality.md §5): enter + run_due ≤ 10 s for 100,000
customers; the ratio is the baseline's seconds over Tagbase's.
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

from bench import machine, report
from bench.campaign_child import THRESHOLD, expected_sql
from bench.databases import DEFAULT_POSTGRES_URL, PostgresBench, RunDatabase
from bench.import_bench import _fail, _figures
from bench.measure import Measured, run_measured
from bench.segment_bench import child_env, open_segment_database

Log = Callable[[str], None]
KINDS = ("baseline", "tagbase")
BAR_S = 10.0  # quality.md §5: "Campaign: 100,000 customers through trigger → filter → add"
BAR_SIZE = 100_000


def _expected(db: Any, run: RunDatabase, audience: str) -> dict[str, int]:
    """What a correct run leaves: the customers the rule selects, and how many of the
    audience's members are among them / in all (hand-written SQL on the run's database)."""
    conn = db.checker(run)
    mark = "?" if db.engine == "sqlite" else "%s"
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT COUNT(*) {expected_sql(mark)}", (int(THRESHOLD),))
        selected = int(cur.fetchone()[0])
        cur.execute("SELECT COUNT(*) FROM customers_customer")
        customers = int(cur.fetchone()[0])
        members = (
            "FROM audiences_membership m JOIN audiences_audience a ON a.id = m.audience_id "
            f"WHERE a.name = {mark}"
        )
        cur.execute(f"SELECT COUNT(*) {members}", (audience,))
        rows = int(cur.fetchone()[0])
        cur.execute(
            f"SELECT COUNT(*) {members} AND m.customer_id IN (SELECT c.sc_id {expected_sql(mark)})",
            (audience, int(THRESHOLD)),
        )
        right = int(cur.fetchone()[0])
        cur.execute(f"SELECT member_count FROM audiences_audience WHERE name = {mark}", (audience,))
        member_count = int(cur.fetchone()[0])
    finally:
        conn.close()
    return {
        "customers": customers,
        "selected": selected,
        "rows": rows,
        "rows_selected": right,
        "member_count": member_count,
    }


def check(kind: str, out: dict[str, Any], want: dict[str, int]) -> list[str]:
    """Every way a child's result differs from a correct one (empty when right)."""
    n, selected = want["customers"], want["selected"]
    problems = []
    if want["rows"] != selected or want["rows_selected"] != selected:
        problems.append(
            f"the audience holds {want['rows']} members, {want['rows_selected']} of them "
            f"selected by the rule; expected exactly the {selected} it selects"
        )
    if out["changed"] != selected:
        problems.append(f"{out['changed']} memberships changed, expected {selected}")
    if kind == "baseline":
        return problems
    if want["member_count"] != selected or out["member_count"] != selected:
        problems.append(f"member_count {want['member_count']}, expected {selected}")
    nodes = out["nodes"]
    facts = {
        "batches": (out["batches"], 1),
        "requested": (out["requested"], n),
        "entered": (out["entered"], n),
        "filter in": (nodes.get("big", {}).get("in"), n),
        "filter positive": (nodes.get("big", {}).get("out", {}).get("positive"), selected),
        "filter negative": (nodes.get("big", {}).get("out", {}).get("negative"), n - selected),
        "audience step in": (nodes.get("vip", {}).get("in"), selected),
        "passages": (out["passages"], n + selected),
        "tokens left": (out["tokens_left"], 0),
        "operations": (out["operations"], nodes.get("vip", {}).get("runs")),
        "added": (out["added"], selected),
    }
    for name, (got, right) in facts.items():
        if got != right:
            problems.append(f"{name} = {got!r}, expected {right!r}")
    errors = [e for node in nodes.values() for e in node["errors"]]
    if errors:
        problems.append(f"step errors: {errors[:3]}")
    return problems


def run_child(kind: str, run: RunDatabase, audience: str) -> tuple[Measured, dict[str, Any]]:
    argv = [sys.executable, "-m", "bench.campaign_child", kind, "--audience", audience]
    if kind == "baseline":
        argv += run.baseline_args
    measured = run_measured(argv, child_env(run), str(machine.ROOT))
    if measured.returncode != 0:
        raise _fail(f"{kind} exited with {measured.returncode}", measured)
    try:
        return measured, json.loads(measured.stdout)
    except ValueError:
        raise _fail(f"{kind} did not print a JSON result", measured) from None


def _one_run(db: Any, kind: str, number: int, log: Log) -> dict[str, Any]:
    run = db.clone(f"c{kind[0]}{number}")
    audience = f"bench-{kind}-{number}"
    try:
        load = machine.load_average()
        measured, out = run_child(kind, run, audience)
        want = _expected(db, run, audience)
        problems = check(kind, out, want)
        if problems:
            raise _fail(f"{kind} gave a wrong result: " + "; ".join(problems), measured)
    finally:
        db.drop(run)
    steps = ", ".join(f"{k} {v:.2f} s" for k, v in out["steps_s"].items())
    log(
        f"[{db.engine}] {kind} run {number}: {out['total_s']:.2f} s ({steps}), "
        f"{out['changed']:,} memberships"
    )
    return {"kind": kind, "run": number, "load_before": load, "expected": want} | (
        _figures(measured) | {"result": out}
    )


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for kind in KINDS:
        mine = [r for r in results if r["kind"] == kind]
        totals = [r["result"]["total_s"] for r in mine]
        steps = mine[0]["result"]["steps_s"]
        summary[kind] = {
            "s": {
                "median": round(statistics.median(totals), 4),
                "min": round(min(totals), 4),
                "max": round(max(totals), 4),
            },
            "step_s_median": {
                step: round(statistics.median(r["result"]["steps_s"][step] for r in mine), 4)
                for step in steps
            },
            "memberships": mine[-1]["result"]["changed"],
            "process_wall_s_median": round(statistics.median(r["wall_s"] for r in mine), 3),
            "max_rss_mb_median": round(statistics.median(r["max_rss_kb"] / 1024 for r in mine), 1),
        }
    summary["ratio"] = round(
        summary["baseline"]["s"]["median"] / summary["tagbase"]["s"]["median"], 4
    )
    return summary


def bars(engine: str, customers: int, summary: dict[str, Any]) -> list[dict[str, Any]]:
    value = summary["tagbase"]["s"]["median"]
    return [
        {
            "name": f"{engine} campaign, {customers:,} customers: enter + run_due (s, median)",
            "bar": f"<= {BAR_S}",
            "value": value,
            "pass": value <= BAR_S,
            "at_defined_size": customers == BAR_SIZE,
        }
    ]


def bench_campaign(
    engine: str,
    root: Path,
    customers: int,
    runs: int,
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
        log(f"[{engine}] prepared in {setup_s} s")
        for number in range(1, runs + 1):
            for kind in KINDS:
                results.append(_one_run(db, kind, number, log))
    finally:
        db.close()
    load_end = machine.load_average()
    if warning := machine.load_warning(load_end, "at end"):
        warnings.append(warning)
    summary = summarize(results)
    return {
        "benchmark": "campaign",
        "db": engine,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {"customers": customers, "runs": runs, "threshold": THRESHOLD},
        "data": {"rows": db.data["rows"], "database_mb": db.data["database_mb"]},
        "machine": {**machine.describe(), **info},
        "load_average": {"start": load_start, "end": load_end},
        "setup_s": setup_s,
        "warnings": warnings,
        "summary": summary,
        "bars": bars(engine, customers, summary),
        "runs": results,
    }


# --- The table ------------------------------------------------------------------------------


def campaign_table(result: dict[str, Any], saved: Path | None = None) -> str:
    s, m, p = result["summary"], result["machine"], result["params"]
    tagbase = result["runs"][-1]["result"]
    big = tagbase["nodes"]["big"]
    lines = [
        "",
        f"== Campaign benchmark: {result['db']}, {p['customers']:,} customers "
        f"({result['data']['rows']['customers_customerstats']:,} with receipt metrics; "
        f"{result['data']['database_mb']:,} MB), {p['runs']} run(s) each",
        f"  date → filter (total spent ≥ {p['threshold']}: {big['out']['positive']:,} "
        f"positive) → add to audience; step size {tagbase['step_size']:,}, "
        f"{tagbase['steps']} steps",
        f"  machine: {m['nproc']} cores, {m['memory_mb']} MB, {m['cpu_model']}",
        f"  load average: start {report._load(result['load_average']['start'])}, "
        f"end {report._load(result['load_average']['end'])}",
        f"  {'':<10} {'s median [min-max]':<26} {'ratio':>6}  steps (s, median)",
    ]
    for kind in KINDS:
        r = s[kind]
        spread = f"{r['s']['median']:.3f} [{r['s']['min']:.3f}-{r['s']['max']:.3f}]"
        ratio = f"{s['ratio']:.3f}" if kind == "tagbase" else ""
        steps = ", ".join(f"{k} {v:.2f}" for k, v in r["step_s_median"].items())
        lines.append(f"  {kind:<10} {spread:<26} {ratio:>6}  {steps}")
    lines += [
        "  ratio = baseline seconds / Tagbase seconds (medians)",
        "  bars (quality.md §5):",
        *(report._verdict(b) for b in result["bars"]),
        *(f"  WARNING: {w}" for w in result["warnings"]),
    ]
    if saved:
        lines.append(f"  result: {saved}")
    return "\n".join(lines)
