"""``python -m bench import|segment|quick|full|memory`` — see bench/README.md.

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
from bench.databases import DEFAULT_POSTGRES_URL, BenchError
from bench.datagen import generate_in_child
from bench.import_bench import bench_database
from bench.segment_bench import bench_segment, segment_table

QUICK = {"lines": 200_000, "customers": 200_000, "runs": 3}
FULL = {"lines": 1_000_000, "customers": 1_000_000, "runs": 3}
MEMORY_LARGE = 10_000_000
SEGMENT_QUICK = {"customers": 200_000, "runs": 3, "repeats": 3}
SEGMENT_FULL = {"customers": 1_000_000, "runs": 3, "repeats": 3}


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


def cmd_quick(session: Session) -> None:
    run_import(session, _engines(session.args.db), **QUICK)
    run_segment(session, _engines(session.args.db), **SEGMENT_QUICK)


def cmd_full(session: Session) -> None:
    done = run_import(session, _engines(session.args.db), **FULL)
    run_segment(session, _engines(session.args.db), **SEGMENT_FULL)
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
    for name, text in (
        ("quick", "import 200k lines + segments 200k customers, 3 runs"),
        ("full", "1M x3 + segments 1M + 10M memory"),
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
