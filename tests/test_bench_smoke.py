"""Keeps the benchmark harness (bench/) from rotting. Not a benchmark: tiny sizes, no figures
judged — only that the harness runs, measures both sides and refuses wrong results."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import bench.__main__ as bench_cli
from bench.api_child import Load, Record
from bench.api_load import is_member
from bench.baseline_import import SQLITE_PRAGMAS
from bench.datagen import INVALID_VALUES, write_import_file
from bench.datagen_audiences import RESERVED, AudienceSpec, plan
from bench.import_bench import check_tagbase_report, expected_report
from bench.measure import run_measured
from bench.pages_bench import check as check_pages
from bench.pages_child import PAGES
from bench.segment_bench import SCENARIOS, check
from bench.segment_child import PREVIEW_RULES, five_metrics

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_benchmark_runs_on_sqlite_and_reports_tagbase_and_the_baseline(tmp_path):
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "import", "--db", "sqlite", "--lines", "2000"),
            *("--customers", "2000", "--runs", "1", "--json", "--out", str(tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = json.loads(done.stdout)
    [result] = output["results"]
    assert result["db"] == "sqlite"
    assert [r["kind"] for r in result["runs"]] == ["baseline", "tagbase"]
    for kind in ("baseline", "tagbase"):
        summary = result["summary"][kind]
        assert summary["lines_per_s_median"] > 0
        assert summary["max_rss_mb_median"] > 0
    assert result["runs"][1]["report"]["added"] == 1600
    assert result["summary"]["ratio"] > 0
    [saved] = output["files"]
    assert json.loads(Path(saved).read_text())["summary"] == result["summary"]


def _correct_report(spec):
    return {"status": "succeeded_with_rejections", **expected_report(spec)}


def test_a_report_that_differs_from_the_expected_outcome_is_refused(tmp_path):
    spec = write_import_file(tmp_path / "f.csv", 100, 100, seed=3)
    assert check_tagbase_report(_correct_report(spec), spec) == []
    wrong = {**_correct_report(spec), "added": spec.known - 1}
    problems = check_tagbase_report(wrong, spec)
    assert any("accounting identity" in p for p in problems)
    assert any(p.startswith("added") for p in problems)
    moved = {**_correct_report(spec), "added": spec.known - 1, "not_found": spec.unknown + 1}
    assert sorted(check_tagbase_report(moved, spec)) == [
        "added = 79, expected 80",
        "not_found = 7, expected 6",
    ]


def _values(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line[:-1] if line[-1:] in (";", ".") else line for line in lines]


def test_the_generated_file_holds_exactly_the_announced_mix(tmp_path):
    spec = write_import_file(tmp_path / "f.csv", 3000, 5000, seed=7)
    values = _values(tmp_path / "f.csv")
    assert len(values) == spec.lines == 3000
    assert sum(v in INVALID_VALUES for v in values) == spec.invalid
    numbers = [int(v) for v in values if v not in INVALID_VALUES]
    assert numbers[0] <= spec.customers, "the first line is a known id"
    assert sum(n > spec.customers for n in numbers) == spec.unknown
    assert len(set(numbers)) == len(numbers) - spec.duplicate
    assert len({n for n in numbers if n <= spec.customers}) == spec.known == 2400
    assert (spec.unknown, spec.duplicate, spec.invalid) == (200, 200, 200)


def test_the_generated_file_depends_only_on_the_seed(tmp_path):
    write_import_file(tmp_path / "a.csv", 500, 500, seed=11)
    write_import_file(tmp_path / "b.csv", 500, 500, seed=11)
    write_import_file(tmp_path / "c.csv", 500, 500, seed=12)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_the_baseline_uses_the_sqlite_settings_tagbase_uses():
    settings_source = (ROOT / "tagbase" / "settings.py").read_text(encoding="utf-8")
    tagbase_pragmas = re.findall(r'"(PRAGMA [^;"]+);"', settings_source)
    assert tagbase_pragmas, "no PRAGMA found in tagbase/settings.py: update this test"
    assert list(SQLITE_PRAGMAS) == tagbase_pragmas


def test_a_small_child_started_by_a_big_harness_is_measured_small():
    # exec carries the parent's peak RSS over into the child's ru_maxrss: a harness that has
    # been big must not make a small child look big.
    ballast = b"x" * (200 << 20)
    measured = run_measured([sys.executable, "-c", "pass"], {}, str(ROOT))
    del ballast
    assert measured.returncode == 0
    assert 0 < measured.max_rss_kb < 100 << 10, measured


def test_the_segment_benchmark_runs_on_sqlite_and_reports_tagbase_and_the_baseline(tmp_path):
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "segment", "--db", "sqlite", "--customers", "500"),
            *("--runs", "1", "--repeats", "1", "--json", "--out", str(tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = json.loads(done.stdout)
    [result] = output["results"]
    assert result["db"] == "sqlite"
    assert result["data"]["rows"]["customers_customer"] == 500
    assert [(r["kind"], r["scenario"]) for r in result["runs"]] == [
        (kind, scenario) for kind in ("baseline", "tagbase") for scenario in SCENARIOS
    ]
    summary = result["summary"]
    for kind in ("baseline", "tagbase"):
        for rule in PREVIEW_RULES:
            assert summary["preview"][kind]["rules"][rule]["s"]["median"] > 0
        for scenario in ("add", "remove"):
            assert summary[scenario][kind]["memberships"] == 500
            assert summary[scenario][kind]["max_rss_mb_median"] > 0
    tagbase_add = result["runs"][4]["result"]
    assert tagbase_add["status"] == "succeeded" and tagbase_add["changed"] == 500
    assert summary["add"]["ratio"] > 0 and summary["remove"]["ratio"] > 0
    assert len(result["bars"]) == 4
    [saved] = output["files"]
    assert json.loads(Path(saved).read_text())["summary"] == summary


class _Known:
    """A checker whose database is known: the figures a correct run must give."""

    def __init__(self, members: int, previews: dict, in_audience: int) -> None:
        self.figures = {"members": members, "previews": previews}
        self.db = self
        self.run = None
        self.in_audience = in_audience

    def want(self, today):
        return self.figures

    def count_members(self, run, audience):
        return self.in_audience


def test_a_segment_result_that_differs_from_the_plain_sql_one_is_refused():
    figures = {
        "customers": 3,
        "receipts": 4,
        "total_value": "10.00",
        "all_customers": 8,
        "base_total": "40.00",
        "sample": [2, 5, 7],
    }
    previews = {rule: dict(figures) for rule in PREVIEW_RULES}
    shown = five_metrics(figures)
    assert shown["percent_customers"] == "37.50" and shown["percent_revenue"] == "25.00"
    assert shown["average_receipt"] == "2.50"
    right = {"today": "2026-01-01", "rules": {r: {"result": dict(shown)} for r in PREVIEW_RULES}}
    assert check("tagbase", "preview", right, _Known(8, previews, 0), "a") == []
    wrong = json.loads(json.dumps(right))
    wrong["rules"]["events"]["result"]["sample"] = [2, 5, 8]
    assert check("tagbase", "preview", wrong, _Known(8, previews, 0), "a") == [
        "events: sample = [2, 5, 8], expected [2, 5, 7]"
    ]
    job = {
        "today": "2026-01-01",
        "status": "succeeded",
        "error": "",
        "expected": 8,
        "changed": 8,
        "member_count": 8,
        "rows": 8,
    }
    assert check("tagbase", "add", job, _Known(8, previews, 8), "a") == []
    assert check("tagbase", "add", job, _Known(8, previews, 7), "a") == [
        "the audience holds 7 members, expected 8"
    ]
    half = {**job, "changed": 4, "status": "failed", "error": "boom"}
    assert check("tagbase", "add", half, _Known(8, previews, 8), "a") == [
        "add changed 4 memberships, expected 8",
        "job failed: boom",
    ]
    assert check("baseline", "remove", {**job, "changed": 8}, _Known(8, previews, 0), "a") == []


# --- The pages and API benchmarks (bench/pages_bench.py, bench/api_load.py) -------------------


def test_the_pages_and_api_benchmarks_run_on_sqlite_and_check_tagbase_against_the_sql(tmp_path):
    # In this process and on one template, as `make bench` runs them: a tiny size keeps it short.
    args = bench_cli.parser().parse_args(["pages", "--json", "--out", str(tmp_path)])
    session = bench_cli.Session(args)
    spec = AudienceSpec(customers=500, audiences=20, memberships=2000, profile_audiences=20)
    pages_run = {"runs": 1, "requests": 2}
    api_run = {"duration": 0.5, "web": 2, "concurrency": 2, "baseline_duration": 0.2}
    bench_cli.run_audiences(session, ["sqlite"], spec, pages_run, api_run)
    pages, api = session.results
    assert [Path(f).name.split("-")[0] for f in session.saved] == ["pages", "api"]
    assert json.loads(Path(session.saved[0]).read_text())["bars"] == pages["bars"]

    assert pages["data"]["rows"]["audiences_membership"] == 2000
    assert [r["kind"] for r in pages["runs"]] == ["baseline", "tagbase"]
    for kind in ("baseline", "tagbase"):
        for page in PAGES:
            assert pages["summary"][kind]["pages"][page]["n"] == 2
            assert pages["summary"][kind]["pages"][page]["p95"] > 0
    shown = pages["runs"][1]["result"]["pages"]
    assert len(shown["profile"]["shown"]["ids"]) == 20  # customer 1 is in every audience
    assert shown["profile_none"]["shown"]["ids"] == []
    assert pages["summary"]["queries"]["few"]["list"] > 0
    assert len(pages["bars"]) == 8

    phases = api["tagbase"]
    assert set(phases) == {"read_rate", "read_max", "write_rate", "write_max"}
    assert phases["read_max"]["requests"] > 0
    assert phases["read_rate"]["statuses"].get("404", 0) > 0  # non-members were asked too
    assert phases["write_max"]["memberships_added"] > 0  # and checked against the database
    assert api["baseline"]["read"]["requests"] > 0
    assert api["server"]["web_processes"] == 2
    assert len(api["bars"]) == 5


def test_the_generated_audiences_hold_exactly_the_planned_memberships():
    spec = AudienceSpec(customers=1000, audiences=20, memberships=3000, profile_audiences=20)
    planned = plan(spec, datetime(2026, 1, 1, tzinfo=UTC))
    assert sum(a.members for a in planned) == 3000
    assert sum(a.in_profile for a in planned) == 20 and sum(a.in_few for a in planned) == 10
    for a in planned:
        members = {a.member(k, spec.pool) for k in range(a.size)}
        assert len(members) == a.size  # distinct
        assert all(RESERVED < c <= spec.customers for c in members)
        everyone = range(RESERVED + 1, spec.customers + 1)
        assert {c for c in everyone if is_member(a, c, spec.pool)} == members
    assert plan(spec, datetime(2026, 1, 1, tzinfo=UTC)) == planned  # deterministic


def test_pages_that_show_other_audiences_than_the_sql_are_refused():
    spec = AudienceSpec(customers=1000, audiences=3, memberships=100, profile_audiences=2)
    rows = {"ids": [2, 1, 3], "counts": [10, 5, 85]}
    baseline = {
        "pages": {
            "list": {"shown": rows},
            "search": {"shown": {"ids": [1], "counts": [5]}},
            "sort": {"shown": {"ids": [3, 2, 1], "counts": [85, 10, 5]}},
            "profile": {"shown": {"ids": [2, 3], "counts": []}},
        }
    }
    assert check_pages(json.loads(json.dumps(baseline)), baseline, spec) == []
    wrong = json.loads(json.dumps(baseline))
    wrong["pages"]["sort"]["shown"]["counts"] = [85, 5, 10]
    wrong["pages"]["profile"]["shown"]["ids"] = [2]
    problems = check_pages(wrong, baseline, spec)
    assert len(problems) == 2
    assert problems[0].startswith("sort: member counts shown [85, 5, 10]")
    assert problems[1].startswith("profile: the page links audiences [2]")


class _Args:
    url, token, mode, rate, duration, concurrency = "http://127.0.0.1:1", "t", "read", 0.0, 1, 1


def test_the_load_generator_counts_every_wrong_answer_and_lock():
    plan_ = {"pairs": [[1, 5, 1], [1, 6, 0]]}
    load = Load(_Args(), plan_)
    rec = Record()
    load._judge(rec, 0, 200, b'{"member": true, "set_at": "x", "operation_id": 1}')
    load._judge(rec, 1, 404, b'{"error": {"code": "not_member"}}')
    assert not rec.counts
    load._judge(rec, 1, 200, b'{"member": true}')  # a non-member said to be one
    load._judge(rec, 0, 500, b'{"error": {"message": "database is locked"}}')
    assert rec.counts == {"wrong_answer": 1, "server_error": 1, "database_locked": 1}
