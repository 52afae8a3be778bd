"""``python -m bench import|segment|campaign|pages|api|export|quick|full|memory`` — see
bench/README.md.

Exit status: 0 when the benchmark ran (whatever the bars say: a benchmark reports, it does not
judge), 1 when it could not give a trustworthy figure (a wrong import result, a failed child,
no database), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import memory, report
from bench.api_load import api_table, bench_api
from bench.campaign_bench import bench_campaign, campaign_table
from bench.databases import DEFAULT_POSTGRES_URL, BenchError
from bench.datagen import generate_in_child
from bench.datagen_audiences import AudienceSpec
from bench.export_bench import bench_export, export_table
from bench.import_bench import bench_database
from bench.pages_bench import bench_pages, pages_table, prepare_audiences
from bench.segment_bench import bench_segment, segment_table

QUICK = {"lines": 200_000, "customers": 200_000, "runs": 3}
FULL = {"lines": 1_000_000, "customers": 1_000_000, "runs": 3}
MEMORY_LARGE = 10_000_000
SEGMENT_QUICK = {"customers": 200_000, "runs": 3, "repeats": 3}
SEGMENT_FULL = {"customers": 1_000_000, "runs": 3, "repeats": 3}
CAMPAIGN = {"customers": 100_000, "runs": 3}
EXPORT = {"small": 1_000_000, "large": 10_000_000, "runs": 1}
# The pages and API benchmarks share one template per engine (bench/pages_bench.py).
AUDIENCES_FULL = {"customers": 1_000_000, "audiences": 1_000, "memberships": 10_000_000}
AUDIENCES_QUICK = {"customers": 100_000, "audiences": 1_000, "memberships": 1_000_000}
PAGES_FULL = {"runs": 3, "requests": 200}
PAGES_QUICK = {"runs": 1, "requests": 100}
API_FULL = {"duration": 20.0, "web": 2, "concurrency": 4, "baseline_duration": 5.0}
API_QUICK = {"duration": 5.0, "web": 2, "concurrency": 4, "baseline_duration": 2.0}


class Session:
    """Where output goes: the table on stdout, or on stderr when --json owns stdout."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out_dir = Path(args.out)
        self.saved: list[str] = []
        self.file_of: dict[int, str] = {}  # id(result) -> the file it was saved to
        self.results: list[dict[str, Any]] = []

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def show(self, text: str) -> None:
        print(text, file=sys.stderr if self.args.json else sys.stdout, flush=True)

    def keep(self, result: dict[str, Any], prefix: str, table) -> None:  # type: ignore[no-untyped-def]
        path = report.save(result, self.out_dir, prefix)
        self.saved.append(str(path))
        self.file_of[id(result)] = path.name
        self.results.append(result)
        self.show(table(result, path))

    def finish(self) -> None:
        if self.args.json:
            print(json.dumps({"results": self.results, "files": self.saved}, indent=1))


def run_import(
    session: Session, engines: list[str], lines: int, customers: int, runs: int
) -> dict[str, dict[str, Any]]:
    """Generate the file once, bench each engine on it; results by engine."""
    args = session.args
    done = {}
    with tempfile.TemporaryDirectory(prefix="tagbase-bench-") as tmp:
        session.log(f"generating {lines:,} lines (seed {args.seed})")
        spec = generate_in_child(Path(tmp) / "bench-import.csv", lines, customers, args.seed)
        for engine in engines:
            root = Path(tmp) / engine
            root.mkdir()
            result = bench_database(engine, root, spec, runs, args.postgres_url, session.log)
            session.keep(result, f"import-{engine}", report.import_table)
            done[engine] = result
    return done


def run_segment(
    session: Session, engines: list[str], customers: int, runs: int, repeats: int
) -> None:
    with tempfile.TemporaryDirectory(prefix="tagbase-bench-segment-") as tmp:
        for engine in engines:
            root = Path(tmp) / engine
            root.mkdir()
            result = bench_segment(
                engine, root, customers, runs, repeats, session.args.postgres_url, session.log
            )
            session.keep(result, f"segment-{engine}", segment_table)


def run_campaign(session: Session, engines: list[str], customers: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tagbase-bench-campaign-") as tmp:
        for engine in engines:
            root = Path(tmp) / engine
            root.mkdir()
            result = bench_campaign(
                engine, root, customers, runs, session.args.postgres_url, session.log
            )
            session.keep(result, f"campaign-{engine}", campaign_table)


def run_audiences(
    session: Session,
    engines: list[str],
    spec: AudienceSpec,
    pages: dict[str, Any] | None,
    api: dict[str, Any] | None,
) -> None:
    """The pages and/or the API benchmark, on one prepared template per engine."""
    url = session.args.postgres_url
    with tempfile.TemporaryDirectory(prefix="tagbase-bench-audiences-") as tmp:
        for engine in engines:
            root = Path(tmp) / engine
            root.mkdir()
            prepared = prepare_audiences(engine, root, spec, url, session.log)
            try:
                if pages:
                    result = bench_pages(
                        engine,
                        root,
                        spec,
                        **pages,
                        postgres_url=url,
                        log=session.log,
                        prepared=prepared,
                    )
                    session.keep(result, f"pages-{engine}", pages_table)
                if api:
                    result = bench_api(
                        engine,
                        root,
                        spec,
                        **api,
                        postgres_url=url,
                        log=session.log,
                        prepared=prepared,
                    )
                    session.keep(result, f"api-{engine}", api_table)
            finally:
                prepared[0].close()


def _audience_spec(sizes: dict[str, int], profile_audiences: int = 200) -> AudienceSpec:
    return AudienceSpec(
        sizes["customers"],
        sizes["audiences"],
        sizes["memberships"],
        min(profile_audiences, sizes["audiences"]),
    )


def _spec_of(args: argparse.Namespace) -> AudienceSpec:
    sizes = {k: getattr(args, k) for k in ("customers", "audiences", "memberships")}
    return _audience_spec(sizes, args.profile_audiences)


def cmd_pages(session: Session) -> None:
    a = session.args
    pages = {"runs": a.runs, "requests": a.requests}
    run_audiences(session, _engines(a.db), _spec_of(a), pages, None)


def cmd_api(session: Session) -> None:
    a = session.args
    api = {
        "duration": a.duration,
        "web": a.web,
        "concurrency": a.concurrency,
        "baseline_duration": a.baseline_duration,
    }
    run_audiences(session, _engines(a.db), _spec_of(a), None, api)


def _audience_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """``pages`` and ``api``: the audiences data's sizes, then each one's own options."""
    sizes = argparse.ArgumentParser(add_help=False)
    sizes.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    for name, value in AUDIENCES_FULL.items():
        sizes.add_argument(f"--{name}", type=int, default=value)
    sizes.add_argument("--profile-audiences", type=int, default=200, help="customer 1's")
    pages = sub.add_parser(
        "pages", parents=[common, sizes], help="Target audiences page and profile, server time"
    )
    pages.add_argument("--runs", type=int, default=PAGES_FULL["runs"])
    pages.add_argument("--requests", type=int, default=PAGES_FULL["requests"], help="per page")
    api = sub.add_parser("api", parents=[common, sizes], help="API load on gunicorn")
    api.add_argument("--duration", type=float, default=API_FULL["duration"], help="s per phase")
    api.add_argument("--web", type=int, default=API_FULL["web"], help="gunicorn processes")
    api.add_argument("--concurrency", type=int, default=API_FULL["concurrency"])
    api.add_argument(
        "--baseline-duration", type=float, default=API_FULL["baseline_duration"], help="s"
    )


def run_memory(session: Session, small: dict[str, Any], large_lines: int) -> None:
    large = run_import(session, ["sqlite"], large_lines, large_lines, 1)["sqlite"]
    result = memory.compare(small, large)
    result["sources"] = [session.file_of[id(small)], session.file_of[id(large)]]
    session.keep(result, "memory-sqlite", report.memory_table)


def _engines(db: str) -> list[str]:
    return ["sqlite", "postgres"] if db == "both" else [db]


def cmd_import(session: Session) -> None:
    a = session.args
    run_import(session, _engines(a.db), a.lines, a.customers, a.runs)


def cmd_segment(session: Session) -> None:
    a = session.args
    run_segment(session, _engines(a.db), a.customers, a.runs, a.repeats)


def cmd_campaign(session: Session) -> None:
    a = session.args
    run_campaign(session, _engines(a.db), a.customers, a.runs)


def cmd_export(session: Session) -> None:
    a = session.args
    with tempfile.TemporaryDirectory(prefix="tagbase-bench-export-") as tmp:
        for engine in _engines(a.db):
            root = Path(tmp) / engine
            root.mkdir()
            result = bench_export(
                engine, root, a.small, a.large, a.runs, a.postgres_url, session.log
            )
            session.keep(result, f"export-{engine}", export_table)


def cmd_quick(session: Session) -> None:
    run_import(session, _engines(session.args.db), **QUICK)
    run_segment(session, _engines(session.args.db), **SEGMENT_QUICK)
    run_audiences(
        session, _engines(session.args.db), _audience_spec(AUDIENCES_QUICK), PAGES_QUICK, API_QUICK
    )


def cmd_full(session: Session) -> None:
    done = run_import(session, _engines(session.args.db), **FULL)
    run_segment(session, _engines(session.args.db), **SEGMENT_FULL)
    run_audiences(
        session, _engines(session.args.db), _audience_spec(AUDIENCES_FULL), PAGES_FULL, API_FULL
    )
    if "sqlite" in done:
        run_memory(session, done["sqlite"], MEMORY_LARGE)


def cmd_memory(session: Session) -> None:
    a = session.args
    small = run_import(session, ["sqlite"], a.lines, a.lines, 1)["sqlite"]
    run_memory(session, small, a.large_lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description="Tagbase benchmarks")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    common.add_argument("--out", default=str(report.RESULTS_DIR), help="directory for results")
    common.add_argument("--seed", type=int, default=1, help="seed of the generated file")
    common.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="server to use")
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", parents=[common], help="import: Tagbase vs the baseline")
    imp.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    imp.add_argument("--lines", type=int, default=FULL["lines"])
    imp.add_argument("--customers", type=int, default=FULL["customers"])
    imp.add_argument("--runs", type=int, default=FULL["runs"])
    seg = sub.add_parser("segment", parents=[common], help="segments: preview, add, remove")
    seg.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    seg.add_argument("--customers", type=int, default=SEGMENT_FULL["customers"])
    seg.add_argument("--runs", type=int, default=SEGMENT_FULL["runs"])
    seg.add_argument(
        "--repeats", type=int, default=SEGMENT_FULL["repeats"], help="preview calls per run"
    )
    camp = sub.add_parser("campaign", parents=[common], help="campaign: trigger → filter → add")
    camp.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    camp.add_argument("--customers", type=int, default=CAMPAIGN["customers"])
    camp.add_argument("--runs", type=int, default=CAMPAIGN["runs"])
    _audience_parsers(sub, common)
    exp = sub.add_parser(
        "export", parents=[common], help="export an audience: peak RSS at two sizes"
    )
    exp.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    exp.add_argument("--small", type=int, default=EXPORT["small"], help="members, smaller run")
    exp.add_argument("--large", type=int, default=EXPORT["large"], help="members, larger run")
    exp.add_argument("--runs", type=int, default=EXPORT["runs"])
    for name, text in (
        ("quick", "import 200k lines + segments 200k customers, 3 runs + pages, API at 100k"),
        ("full", "1M x3 + segments 1M + pages, API at 1M / 10M memberships + 10M memory"),
    ):
        one = sub.add_parser(name, parents=[common], help=text)
        one.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    mem = sub.add_parser("memory", parents=[common], help="SQLite peak RSS: 1M vs 10M lines")
    mem.add_argument("--lines", type=int, default=FULL["lines"], help="the smaller import")
    mem.add_argument("--large-lines", type=int, default=MEMORY_LARGE, help="the larger import")
    return p


COMMANDS = {
    "import": cmd_import,
    "segment": cmd_segment,
    "campaign": cmd_campaign,
    "pages": cmd_pages,
    "api": cmd_api,
    "export": cmd_export,
    "quick": cmd_quick,
    "full": cmd_full,
    "memory": cmd_memory,
}


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so that every database created is dropped on the way out.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "runs", 1) < 1:
        parser().error("--runs must be at least 1")
    if getattr(args, "repeats", 1) < 1:
        parser().error("--repeats must be at least 1")
    signal.signal(signal.SIGTERM, _terminate)
    session = Session(args)
    try:
        COMMANDS[args.command](session)
    except (BenchError, ValueError) as exc:
        print(f"BENCHMARK FAILED (no figures): {exc}", file=sys.stderr)
        return 1
    session.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
