"""Keeps the benchmark harness (bench/) from rotting. Not a benchmark: tiny sizes, no figures
judged — only that the harness runs, measures both sides and refuses wrong results."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from bench.baseline_import import SQLITE_PRAGMAS
from bench.datagen import INVALID_VALUES, write_import_file
from bench.import_bench import check_tagbase_report, expected_report
from bench.measure import run_measured
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
